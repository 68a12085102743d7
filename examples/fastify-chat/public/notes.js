// Shared notes: a Y.Text bound to a <textarea>, synced through the server's /yjs/<room>
// endpoint with y-websocket, and the other editors' carets from awareness.
import * as Y from 'yjs';
import { WebsocketProvider } from 'y-websocket';

/** The smallest edit that turns `before` into `after`: {index, remove, insert}. */
export function diff(before, after) {
  let start = 0;
  const max = Math.min(before.length, after.length);
  while (start < max && before.charCodeAt(start) === after.charCodeAt(start)) start++;
  let end = 0;
  while (end < max - start && before.charCodeAt(before.length - 1 - end) === after.charCodeAt(after.length - 1 - end)) end++;
  return { index: start, remove: before.length - start - end, insert: after.slice(start, after.length - end) };
}

/** Moves a caret index through a Yjs text delta made by someone else. */
function transform(pos, delta) {
  let index = 0;
  for (const op of delta) {
    if (index > pos) break;
    if (op.retain) index += op.retain;
    else if (op.insert) {
      const length = typeof op.insert === 'string' ? op.insert.length : 1;
      // An insert at the caret goes after it only when it is strictly before.
      if (index < pos) pos += length;
      index += length;
    } else if (op.delete) {
      pos -= Math.min(op.delete, Math.max(0, pos - index));
    }
  }
  return pos;
}

/** Line and column (both from 1) of an index in a text. */
function lineCol(text, index) {
  const before = text.slice(0, index);
  const line = before.split('\n').length;
  return { line, col: index - before.lastIndexOf('\n') };
}

export class Notes {
  constructor({ textarea, list, status, getToken, user }) {
    this.textarea = textarea;
    this.list = list;
    this.status = status;
    this.getToken = getToken;
    this.user = user;
    this.room = null;
    this.doc = null;
    this.provider = null;
    this.text = null;
    this.onInput = () => this.pushLocal();
    this.onCaret = () => this.publishCaret();
    textarea.addEventListener('input', this.onInput);
    for (const type of ['select', 'keyup', 'mouseup', 'focus']) textarea.addEventListener(type, this.onCaret);
  }

  setStatus(state, text = state) {
    this.status.dataset.state = state;
    this.status.textContent = text;
  }

  /** Opens the notes of a room (the Yjs document named after it). */
  async open(room) {
    if (room === this.room) return;
    const token = await this.getToken();
    if (room === this.room) return;
    this.close();
    this.room = room;
    this.doc = new Y.Doc();
    this.text = this.doc.getText('notes');
    this.textarea.value = '';
    this.textarea.disabled = true;
    this.setStatus('connecting', 'connecting…');
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    // disableBc: tabs of one browser would otherwise also sync through a BroadcastChannel;
    // here everything goes through the server.
    const provider = new WebsocketProvider(`${scheme}://${location.host}/yjs`, room, this.doc, {
      params: { token },
      disableBc: true,
    });
    this.provider = provider;
    provider.awareness.setLocalStateField('user', this.user);
    provider.on('status', ({ status }) => {
      if (provider !== this.provider) return;
      if (status === 'connected') this.setStatus(provider.synced ? 'synced' : 'connecting', provider.synced ? 'live' : 'syncing…');
      else if (status === 'connecting') this.setStatus('connecting', 'connecting…');
      else this.setStatus('offline', 'offline');
    });
    provider.on('sync', (synced) => {
      if (provider !== this.provider || !synced) return;
      this.textarea.value = this.text.toString();
      this.textarea.disabled = false;
      this.setStatus('synced', 'live');
      this.renderEditors();
    });
    provider.on('connection-close', (event) => {
      if (provider !== this.provider || !event) return;
      // 4401: the token ended (the server closes a document connection at its `exp`): connect
      // again with a fresh one. Local edits stay in the document and sync on reconnect.
      if (event.code === 4401 && event.reason === 'Token expired') {
        this.getToken().then((fresh) => {
          if (provider !== this.provider) return;
          provider.params.token = fresh;
          provider.connect();
        });
        return;
      }
      // Other 44xx: refused (access, size); y-websocket stops retrying.
      if (event.code >= 4400 && event.code < 4500) {
        this.textarea.disabled = true;
        this.setStatus('error', event.reason || `closed (${event.code})`);
      }
    });
    this.text.observe((event, transaction) => {
      if (transaction.local && transaction.origin === this) return;
      this.pullRemote(event.delta);
    });
    provider.awareness.on('change', () => this.renderEditors());
    this.renderEditors();
  }

  close() {
    if (!this.provider) return;
    this.provider.destroy();
    this.doc.destroy();
    this.provider = null;
    this.doc = null;
    this.text = null;
    this.room = null;
    this.list.replaceChildren();
  }

  /** The textarea changed: apply the difference to the Y.Text. */
  pushLocal() {
    if (!this.text) return;
    const { index, remove, insert } = diff(this.text.toString(), this.textarea.value);
    if (!remove && !insert) return;
    this.doc.transact(() => {
      if (remove) this.text.delete(index, remove);
      if (insert) this.text.insert(index, insert);
    }, this);
    this.publishCaret();
  }

  /** Someone else changed the text: show it, keeping our selection where it was. */
  pullRemote(delta) {
    const ta = this.textarea;
    const focused = document.activeElement === ta;
    const start = transform(ta.selectionStart, delta);
    const end = transform(ta.selectionEnd, delta);
    ta.value = this.text.toString();
    if (focused) ta.setSelectionRange(start, end, ta.selectionDirection);
    this.renderEditors();
  }

  /**
   * Shares our caret as Yjs relative positions, which stay right while others edit. It stays
   * shared after the textarea loses focus: the others see where we were last.
   */
  publishCaret() {
    if (!this.provider || document.activeElement !== this.textarea) return;
    const ta = this.textarea;
    const rel = (i) => Y.relativePositionToJSON(Y.createRelativePositionFromTypeIndex(this.text, i));
    const [anchor, head] = ta.selectionDirection === 'backward'
      ? [ta.selectionEnd, ta.selectionStart]
      : [ta.selectionStart, ta.selectionEnd];
    this.provider.awareness.setLocalStateField('cursor', { anchor: rel(anchor), head: rel(head) });
  }

  /** The list of the others in the notes, with where their caret is. */
  renderEditors() {
    if (!this.provider) return;
    const awareness = this.provider.awareness;
    const text = this.text.toString();
    const abs = (json) => {
      const pos = Y.createAbsolutePositionFromRelativePosition(Y.createRelativePositionFromJSON(json), this.doc);
      return pos && pos.type === this.text ? pos.index : null;
    };
    const items = [];
    for (const [clientId, state] of awareness.getStates()) {
      if (clientId === awareness.clientID || !state.user) continue;
      const { name, color } = state.user;
      const li = document.createElement('li');
      const who = document.createElement('span');
      who.className = 'editor-name';
      who.textContent = name;
      who.style.color = color;
      const where = document.createElement('span');
      where.className = 'editor-where';
      const head = state.cursor ? abs(state.cursor.head) : null;
      if (head === null) {
        where.textContent = 'viewing';
        li.append(who, ' ', where);
      } else {
        const anchor = abs(state.cursor.anchor) ?? head;
        const { line, col } = lineCol(text, head);
        const selected = Math.abs(head - anchor);
        where.textContent = `line ${line}, col ${col}${selected ? `, ${selected} selected` : ''}`;
        // A few characters either side of the caret, the caret in the editor's colour.
        const snippet = document.createElement('code');
        snippet.className = 'editor-snippet';
        const lineStart = text.lastIndexOf('\n', head - 1) + 1;
        const lineEnd = text.indexOf('\n', head) === -1 ? text.length : text.indexOf('\n', head);
        const left = text.slice(Math.max(lineStart, head - 16), head);
        const right = text.slice(head, Math.min(lineEnd, head + 16));
        const caret = document.createElement('span');
        caret.className = 'caret';
        caret.style.background = color;
        snippet.append(left, caret, right);
        li.append(who, ' ', where, snippet);
      }
      items.push(li);
    }
    if (!items.length) {
      const li = document.createElement('li');
      li.className = 'muted';
      li.textContent = 'Nobody else is here. Their carets show up in this list.';
      items.push(li);
    }
    this.list.replaceChildren(...items);
  }
}
