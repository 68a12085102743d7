// The demo page: chat over the typed client SDK @switchboard/client (rooms, presence, typing,
// history, recovery) and shared notes.
import { connect } from '@switchboard/client';
import { Notes } from './notes.js';

const DEFAULT_ROOMS = ['lobby', 'random', 'help', 'locked'];
const SESSION_KEY = 'switchboard-demo-session';
const HISTORY_PAGE = 50;
const TYPING_IDLE_MS = 3000;
const REQUEST_TIMEOUT_MS = 8000;

const $ = (id) => document.getElementById(id);
const ui = {
  status: $('status'), me: $('me'), meName: $('me-name'), signOut: $('sign-out'),
  login: $('login'), loginForm: $('login-form'), loginName: $('login-name'), loginError: $('login-error'),
  app: $('app'), roomList: $('room-list'), roomForm: $('room-form'), roomInput: $('room-input'),
  roomTitle: $('room-title'), memberCount: $('member-count'), roomError: $('room-error'),
  messages: $('messages'), typing: $('typing'), composer: $('composer'), input: $('message-input'),
  sendError: $('send-error'), members: $('members'),
};

let session = null; // {token, user: {id, username}}
/** The @switchboard/client connection (a SwitchboardClient). */
let client = null;
let notes = null;
let currentRoom = null;
let everConnected = false;
const knownRooms = new Set(DEFAULT_ROOMS);
const deniedRooms = new Set();
/** roomId → {members: Map<userId, username>, typing: Map<userId, username>, messages: Map<id, message>} */
const rooms = new Map();

// ---------------------------------------------------------------------------------------
// Small helpers

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === 'class') node.className = value;
    else if (key === 'data') Object.assign(node.dataset, value);
    else node[key] = value;
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

/** A stable colour for a user id. */
export function colorOf(id) {
  let h = 0;
  for (const ch of id) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  return `hsl(${h % 360} 62% 42%)`;
}

function roomState(roomId) {
  let state = rooms.get(roomId);
  if (!state) {
    state = { members: new Map(), typing: new Map(), messages: new Map(), complete: false };
    rooms.set(roomId, state);
  }
  return state;
}

const errorTimers = new WeakMap();
function showError(node, text, ms = 0) {
  clearTimeout(errorTimers.get(node));
  node.textContent = text;
  node.hidden = !text;
  if (text && ms) errorTimers.set(node, setTimeout(() => { node.hidden = true; }, ms));
}

/** What an error code means to a user. */
function describe(error) {
  const labels = {
    RATE_LIMITED: 'Rate limited',
    ACCESS_DENIED: 'Access denied',
    INVALID_ROOM: 'Invalid room',
    NOT_IN_ROOM: 'Not in this room',
    INVALID_MESSAGE: 'Message refused',
    NOT_REACHABLE: 'Not reachable',
    TIMEOUT: 'No answer',
    DISCONNECTED: 'Connection lost',
    CLOSED: 'Signed out',
    INTERNAL: 'Server error',
  };
  const label = labels[error.code] || error.code || 'Error';
  return error.message ? `${label}: ${error.message}` : label;
}

/** A request of the SDK as {result} or {error: SwitchboardError {code, message}} (never rejects). */
function request(promise) {
  return promise.then((result) => ({ result }), (error) => ({ error }));
}

function setStatus(state, text = state) {
  ui.status.dataset.state = state;
  ui.status.textContent = text;
}

// ---------------------------------------------------------------------------------------
// Signing in and out

function loadSession() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(SESSION_KEY));
    if (saved && saved.token && saved.user) return saved;
  } catch { /* nothing saved */ }
  return null;
}

ui.loginForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  showError(ui.loginError, '');
  try {
    const response = await fetch('/login', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: ui.loginName.value }),
    });
    const body = await response.json();
    if (!response.ok) return showError(ui.loginError, body.message || 'Sign-in failed');
    session = body;
    sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
    start();
  } catch (error) {
    showError(ui.loginError, `Sign-in failed: ${error.message}`);
  }
});

// The token's expiry (Unix seconds) from its payload; the page only reads it, the server
// checks it.
function tokenExpiry(token) {
  try {
    const payload = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(payload)).exp || 0;
  } catch {
    return 0;
  }
}

// The session's token, signed again when less than a minute of it is left: what an app's
// session refresh does (here, signing in again with the same name). The server warns a
// connection 30 s before its token ends and the SDK asks for a new one, so a tab stays
// connected past the 12 h a token lasts, and a reload of an old tab connects again.
async function freshToken() {
  if (!session) return '';
  if (tokenExpiry(session.token) * 1000 - Date.now() > 60_000) return session.token;
  try {
    const response = await fetch('/login', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: session.user.username }),
    });
    if (response.ok) {
      session = { ...session, token: (await response.json()).token };
      sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
    }
  } catch { /* offline: the old token, refused if it has ended */ }
  return session.token;
}

ui.signOut.addEventListener('click', () => signOut());

function signOut(message = '') {
  sessionStorage.removeItem(SESSION_KEY);
  session = null;
  const old = client;
  client = null;
  if (old) old.close();
  if (notes) notes.close();
  notes = null;
  currentRoom = null;
  everConnected = false;
  rooms.clear();
  ui.app.hidden = true;
  ui.me.hidden = true;
  ui.login.hidden = false;
  setStatus('offline', 'signed out');
  showError(ui.loginError, message);
  ui.loginName.focus();
}

// ---------------------------------------------------------------------------------------
// The connection

function start() {
  ui.login.hidden = true;
  ui.app.hidden = false;
  ui.me.hidden = false;
  ui.meName.textContent = session.user.username;
  ui.meName.style.color = colorOf(session.user.id);
  notes = new Notes({
    textarea: $('notes'),
    list: $('editors'),
    status: $('notes-status'),
    getToken: freshToken,
    user: { id: session.user.id, name: session.user.username, color: colorOf(session.user.id) },
  });
  renderRooms();
  setStatus('connecting', 'connecting…');
  // Same origin: the page and /socket.io/ are served by the same Fastify app. getToken is asked
  // on every connection attempt and when the server says the token is about to expire.
  const sb = connect(location.origin, {
    getToken: freshToken,
    autoConnect: false,
    ackTimeout: REQUEST_TIMEOUT_MS,
    typingIdle: TYPING_IDLE_MS,
    socketOptions: { reconnectionDelay: 500, reconnectionDelayMax: 3000 },
  });
  client = sb;

  sb.state.subscribe((state) => {
    if (client !== sb) return; // signed out
    if (state === 'connected' && !everConnected) {
      everConnected = true;
      setStatus('connected');
      enterRoom(roomFromHash() || 'lobby');
    } else if (state === 'connected') {
      // A new session: the SDK joins the room again ('rejoined'), which reloads its history.
      setStatus('reconnected');
      for (const [roomId, room] of rooms) {
        room.messages.clear();
        room.typing.clear();
        room.complete = false;
        if (roomId === currentRoom) {
          renderMessages();
          renderTyping();
        }
      }
    } else if (state === 'recovered') {
      // Connection state recovery: same session, rooms kept, missed messages replayed.
      setStatus('recovered');
    } else if (state === 'connecting') {
      setStatus(everConnected ? 'reconnecting' : 'connecting', everConnected ? 'reconnecting…' : 'connecting…');
    } else {
      // 'reconnecting' or 'disconnected': whoever was typing may have stopped meanwhile.
      for (const room of rooms.values()) room.typing.clear();
      renderTyping();
      const error = sb.error.get();
      if (state === 'reconnecting') {
        setStatus('reconnecting', 'reconnecting…');
      } else if (error && error.code === 'UNAUTHORIZED') {
        signOut(`Signed out: ${error.message}. Sign in again.`);
      } else if (error && error.code === 'DISCONNECTED') {
        // The server ended the session (e.g. for flooding); come back after a pause.
        setStatus('reconnecting', 'disconnected by the server…');
        setTimeout(() => { if (client === sb) sb.connect(); }, 2000);
      }
    }
  });

  sb.on('rejoined', ({ roomId }) => {
    if (roomId === currentRoom) loadHistory(roomId);
  });
  sb.on('rejoinFailed', ({ roomId, error }) => {
    if (roomId !== currentRoom) return;
    if (error.code === 'ACCESS_DENIED') deniedRooms.add(roomId);
    currentRoom = null;
    rooms.delete(roomId);
    renderRooms();
    showError(ui.roomError, describe(error));
  });
  sb.on('roomMembers', ({ roomId, members }) => {
    const state = roomState(roomId);
    state.members = new Map(members.map((m) => [m.userId, m.username]));
    if (roomId === currentRoom) renderMembers();
  });
  sb.on('userJoined', ({ roomId, userId, username }) => {
    roomState(roomId).members.set(userId, username);
    if (roomId === currentRoom) renderMembers();
  });
  sb.on('userLeft', ({ roomId, userId }) => {
    const state = roomState(roomId);
    state.members.delete(userId);
    state.typing.delete(userId);
    if (roomId === currentRoom) {
      renderMembers();
      renderTyping();
    }
  });
  sb.on('typing', ({ roomId, userId, username, isTyping }) => {
    const state = roomState(roomId);
    if (isTyping) state.typing.set(userId, username);
    else state.typing.delete(userId);
    if (roomId === currentRoom) renderTyping();
  });
  sb.on('message', (message) => {
    const state = roomState(message.roomId);
    state.messages.set(message.id, message);
    state.typing.delete(message.userId);
    if (message.roomId === currentRoom) {
      renderMessages();
      renderTyping();
    }
  });
  // A failure without a callback, e.g. RATE_LIMITED before a flood disconnect.
  sb.on('error', (error) => {
    showError(ui.sendError, describe(error), 8000);
  });
  sb.connect();
}

// ---------------------------------------------------------------------------------------
// Rooms

function roomFromHash() {
  const name = decodeURIComponent(location.hash.slice(1)).trim();
  return name || null;
}

function lockIcon() {
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', '0 0 16 16');
  svg.setAttribute('class', 'lock');
  svg.setAttribute('aria-label', 'no access');
  svg.innerHTML = '<rect x="3" y="7" width="10" height="7" rx="1.5"/><path d="M5.5 7V5a2.5 2.5 0 0 1 5 0v2" fill="none" stroke-width="1.6"/>';
  return svg;
}

function renderRooms() {
  for (const room of [currentRoom, roomFromHash()]) if (room) knownRooms.add(room);
  ui.roomList.replaceChildren(...[...knownRooms].map((room) => {
    const denied = deniedRooms.has(room) || room === 'locked';
    const button = el('button', {
      type: 'button',
      class: 'room' + (room === currentRoom ? ' active' : ''),
      textContent: `# ${room}`,
      title: room === 'locked' ? 'Nobody may join this room: it shows an access refusal' : `Join ${room}`,
    }, denied ? lockIcon() : null);
    button.setAttribute('aria-current', room === currentRoom ? 'true' : 'false');
    button.addEventListener('click', () => enterRoom(room));
    return el('li', {}, button);
  }));
}

ui.roomForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const room = ui.roomInput.value.trim();
  if (!room) return;
  ui.roomInput.value = '';
  enterRoom(room);
});

window.addEventListener('hashchange', () => {
  const room = roomFromHash();
  if (room && client) enterRoom(room);
});

let joining = null;
async function enterRoom(roomId) {
  const sb = client;
  if (!sb || roomId === currentRoom || joining === roomId) return;
  joining = roomId;
  showError(ui.roomError, '');
  const { error } = await request(sb.joinRoom(roomId));
  if (client !== sb) return; // signed out meanwhile
  if (joining !== roomId) {
    // Another room was chosen meanwhile: do not stay in this one unseen.
    if (!error && roomId !== currentRoom) sb.leaveRoom(roomId).catch(() => {});
    return;
  }
  joining = null;
  if (error) {
    if (error.code === 'ACCESS_DENIED') deniedRooms.add(roomId);
    knownRooms.add(roomId);
    renderRooms();
    showError(ui.roomError, `${describe(error)}`);
    return;
  }
  const previous = currentRoom;
  currentRoom = roomId;
  stopTyping(previous);
  if (previous) {
    sb.leaveRoom(previous).catch(() => {});
    rooms.delete(previous);
  }
  if (location.hash.slice(1) !== encodeURIComponent(roomId)) history.replaceState(null, '', `#${encodeURIComponent(roomId)}`);
  ui.roomTitle.textContent = `# ${roomId}`;
  renderRooms();
  renderMembers();
  renderTyping();
  renderMessages();
  notes.open(roomId);
  await loadHistory(roomId);
}

async function loadHistory(roomId, before) {
  if (!client) return;
  const { result, error } = await request(client.getHistory(roomId, { limit: HISTORY_PAGE, ...(before ? { before } : {}) }));
  if (roomId !== currentRoom) return;
  if (error) return showError(ui.roomError, `Could not load history: ${describe(error)}`);
  const state = roomState(roomId);
  for (const message of result.messages) state.messages.set(message.id, message);
  state.complete = result.messages.length < HISTORY_PAGE;
  renderMessages(before ? 'keep' : 'bottom');
}

// ---------------------------------------------------------------------------------------
// Rendering

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });

function renderMessages(scroll = 'auto') {
  const list = ui.messages;
  const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  const oldHeight = list.scrollHeight;
  const state = currentRoom ? roomState(currentRoom) : null;
  const messages = state ? [...state.messages.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)) : [];
  const items = [];
  if (state && !state.complete && messages.length) {
    const more = el('button', { type: 'button', class: 'link', textContent: 'Load earlier messages' });
    more.addEventListener('click', () => loadHistory(currentRoom, messages[0].id));
    items.push(el('li', { class: 'more' }, more));
  }
  if (state && !messages.length) items.push(el('li', { class: 'empty muted', textContent: 'No messages yet. Say hello!' }));
  for (const m of messages) {
    const mine = session && m.userId === session.user.id;
    items.push(el('li', { class: 'message' + (mine ? ' mine' : ''), data: { id: m.id } },
      el('span', { class: 'avatar', textContent: [...m.username][0]?.toUpperCase() || '?', style: `background:${colorOf(m.userId)}` }),
      el('div', { class: 'bubble' },
        el('div', { class: 'meta' },
          el('span', { class: 'author', textContent: m.username, style: `color:${colorOf(m.userId)}` }),
          el('time', { dateTime: m.timestamp, textContent: timeFormat.format(new Date(m.timestamp)) })),
        el('p', { class: 'text', textContent: m.text }))));
  }
  list.replaceChildren(...items);
  if (scroll === 'bottom' || (scroll === 'auto' && nearBottom)) list.scrollTop = list.scrollHeight;
  else if (scroll === 'keep') list.scrollTop = list.scrollHeight - oldHeight;
}

function renderMembers() {
  const state = currentRoom ? roomState(currentRoom) : null;
  const members = state ? [...state.members] : [];
  members.sort((a, b) => a[1].localeCompare(b[1]));
  ui.members.replaceChildren(...members.map(([id, name]) => el('li', { data: { userId: id } },
    el('span', { class: 'dot', style: `background:${colorOf(id)}` }),
    el('span', { class: 'name', textContent: name }),
    session && id === session.user.id ? el('span', { class: 'muted', textContent: ' (you)' }) : null)));
  ui.memberCount.textContent = members.length ? `${members.length} online` : '';
}

function renderTyping() {
  const state = currentRoom ? roomState(currentRoom) : null;
  const names = state ? [...state.typing.values()] : [];
  let text = '';
  if (names.length === 1) text = `${names[0]} is typing…`;
  else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
  else if (names.length > 2) text = `${names.length} people are typing…`;
  ui.typing.textContent = text;
}

// ---------------------------------------------------------------------------------------
// Typing and sending

// The SDK's typing helper: `startTyping` on the first keystroke, `stopTyping` after
// TYPING_IDLE_MS without one (nothing is sent while offline).
let typingRoom = null;

function stopTyping(roomId = typingRoom) {
  if (typingRoom && roomId === typingRoom && client) client.stopTyping(typingRoom);
  typingRoom = null;
}

ui.input.addEventListener('input', () => {
  if (!currentRoom || !client || !client.connected) return;
  if (!ui.input.value) return stopTyping();
  if (typingRoom !== currentRoom) stopTyping();
  typingRoom = currentRoom;
  client.typing(currentRoom);
});
ui.input.addEventListener('blur', () => stopTyping());

ui.composer.addEventListener('submit', async (event) => {
  event.preventDefault();
  const text = ui.input.value;
  if (!text.trim() || !currentRoom || !client) return;
  ui.input.value = '';
  stopTyping();
  const { error } = await request(client.sendMessage(currentRoom, text));
  if (error) {
    showError(ui.sendError, describe(error), 6000);
    if (!ui.input.value) ui.input.value = text; // give the text back to try again
  } else {
    showError(ui.sendError, '');
  }
});

// ---------------------------------------------------------------------------------------

session = loadSession();
if (session) start();
else setStatus('offline', 'signed out');
