import { RoomClientBase } from '../base.js';
import { SwitchboardError, toSwitchboardError } from '../errors.js';
import type {
  EventMap,
  EventName,
  HistoryOptions,
  HistoryResult,
  LocalEvents,
  SendResult,
  Unsubscribe,
} from '../types.js';

/** What the client needs of a WebSocket: the browser's, or the `ws` package's. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: any) => void) | null;
}

/** `globalThis.WebSocket`, or a compatible constructor such as the `ws` package's. */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface WsConnectOptions {
  /** A fixed JWT. */
  token?: string;
  /** Called for every connection attempt (and on `tokenExpiring`); takes precedence over `token`. */
  getToken?: () => string | Promise<string>;
  /** The endpoint's path, with the server's prefix (`/rt/ws`). Default `/ws`. */
  path?: string;
  /** The WebSocket constructor (default `globalThis.WebSocket`; in Node before 22, pass `require('ws')`). */
  WebSocket?: WebSocketConstructor;
  /** Connect at once (default true); else call `connect()`. */
  autoConnect?: boolean;
  /** Milliseconds to wait for the server's answer to a request. Default 10000. */
  ackTimeout?: number;
  /** Reconnect after a lost connection (default true). */
  reconnection?: boolean;
  /** First delay before reconnecting, doubled on every failure up to `reconnectionDelayMax`. Default 500. */
  reconnectionDelay?: number;
  /** Longest delay between reconnection attempts. Default 5000. */
  reconnectionDelayMax?: number;
  /** Milliseconds of silence after which the typing helper sends `stopTyping`. Default 2000. */
  typingIdle?: number;
  /** Milliseconds after which continued typing sends `startTyping` again. Default 3000 (0 = never). */
  typingRefresh?: number;
}

const LOCAL_EVENTS: ReadonlySet<string> = new Set<keyof LocalEvents>(['rejoined', 'rejoinFailed']);
/** Close codes after which reconnecting would be refused the same way. */
const FINAL_CLOSE_CODES: ReadonlySet<number> = new Set([1003, 1008, 1009, 4000, 4401]);
const OPEN = 1;

type Pending = {
  resolve: (v: any) => void;
  reject: (e: SwitchboardError) => void;
  timer: ReturnType<typeof setTimeout>;
  /** On the wire (else queued until the connection is ready). */
  sent: boolean;
};
type Frame = { type?: string; [key: string]: any };

/**
 * A connection to a Switchboard server's `/ws` endpoint with the chat contract typed: the
 * API of `@switchboard/client`'s `SwitchboardClient`, over plain WebSocket. It reconnects with
 * backoff and resumes its session (rooms and missed events) by itself; when the server
 * cannot resume, it joins its rooms again.
 */
export class WsSwitchboardClient extends RoomClientBase {
  /** The server's session id (`ready.sessionId`), once connected. */
  sessionId: string | null = null;
  /** The recovery offset of the last event received (what a resume presents). */
  offset: string | null = null;

  private readonly url: string;
  private readonly options: WsConnectOptions;
  private readonly ackTimeout: number;
  private socket: WebSocketLike | null = null;
  private ready = false;
  private everConnected = false;
  private closed = false;
  private wanted = false;
  private attempts = 0;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly queue: string[] = [];
  private readonly handlers = new Map<string, Set<(data: any) => void>>();
  private lastServerError: SwitchboardError | null = null;

  constructor(url: string, options: WsConnectOptions = {}) {
    const autoConnect = options.autoConnect ?? true;
    super(autoConnect ? 'connecting' : 'disconnected', {
      idleMs: options.typingIdle,
      refreshMs: options.typingRefresh,
    });
    this.options = options;
    this.ackTimeout = options.ackTimeout ?? 10_000;
    const base = new URL(url);
    base.protocol = base.protocol === 'https:' || base.protocol === 'wss:' ? 'wss:' : 'ws:';
    base.pathname = options.path ?? '/ws';
    base.search = '';
    this.url = base.toString();
    if (autoConnect) this.connect();
  }

  /** Whether the connection is up and authenticated. */
  get connected(): boolean {
    return this.ready;
  }

  /** Connects (again) after `autoConnect: false` or `disconnect()`. */
  connect(): this {
    if (this.closed) throw new SwitchboardError('CLOSED', 'The client is closed');
    if (this.wanted) return this;
    this.wanted = true;
    this.errorStore.set(null);
    this.stateStore.set('connecting');
    this.open();
    return this;
  }

  /** Disconnects; `connect()` reconnects (and resumes within the server's window). */
  disconnect(): this {
    this.wanted = false;
    clearTimeout(this.retryTimer);
    this.resetTyping();
    const socket = this.socket;
    this.socket = null;
    this.ready = false;
    if (socket) socket.close(1000);
    this.failPending('DISCONNECTED', 'Disconnected before the answer');
    this.errorStore.set(null);
    this.stateStore.set('disconnected');
    return this;
  }

  /** Disconnects for good: later requests reject with `CLOSED`. */
  close(): void {
    if (this.closed) return;
    this.disconnect();
    this.closed = true;
    this.failPending('CLOSED', 'The client is closed');
  }

  // ---- requests -------------------------------------------------------------------------------

  /** Joins a room; the server sends `roomMembers` first. */
  async joinRoom(roomId: string): Promise<void> {
    await this.request('joinRoom', roomId);
    this.joined.add(roomId);
  }

  /** Leaves a room (a reconnect will not join it again). */
  leaveRoom(roomId: string): Promise<void> {
    this.forgetRoom(roomId);
    return this.request<void>('leaveRoom', roomId);
  }

  /** Sends a message to a room you are in. */
  sendMessage(roomId: string, text: string): Promise<SendResult> {
    this.stopTyping(roomId);
    return this.request<SendResult>('sendMessage', { roomId, text });
  }

  /** Earlier messages of a room you are in, oldest first. */
  async getHistory(roomId: string, options: HistoryOptions = {}): Promise<HistoryResult> {
    const r = await this.request<HistoryResult | null>('getHistory', { roomId, ...options });
    return { messages: r?.messages ?? [] };
  }

  /** Relays `data` to every connection of `toUserId` (who must share a room with you). */
  async signal(toUserId: string, data: unknown): Promise<void> {
    await this.request('signal', { toUserId, data });
  }

  /**
   * Sends any request (a host's own event) and resolves its result; rejects with a
   * `SwitchboardError` carrying the server's code. Waits for the connection when offline.
   */
  request<T = unknown>(event: string, data?: unknown): Promise<T> {
    if (this.closed) return Promise.reject(new SwitchboardError('CLOSED', 'The client is closed'));
    const id = this.nextId++;
    const frame: Frame = { type: 'request', id, event };
    if (data !== undefined) frame.data = data;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new SwitchboardError('TIMEOUT', `No answer to ${event} within ${this.ackTimeout} ms`));
      }, this.ackTimeout);
      const entry: Pending = { resolve, reject, timer, sent: false };
      this.pending.set(id, entry);
      entry.sent = this.send(frame, true);
    });
  }

  // ---- events ---------------------------------------------------------------------------------

  /** Listens to a server event or a client event (`rejoined`, `rejoinFailed`); returns its remover. */
  on<K extends EventName>(event: K, handler: (data: EventMap[K]) => void): Unsubscribe;
  on(event: string, handler: (data: unknown) => void): Unsubscribe;
  on(event: string, handler: (data: any) => void): Unsubscribe {
    const wrapper = event === 'error' ? (data: unknown) => handler(toSwitchboardError(data)) : handler;
    let set = this.handlers.get(event);
    if (!set) this.handlers.set(event, (set = new Set()));
    set.add(wrapper);
    return () => {
      this.handlers.get(event)?.delete(wrapper);
    };
  }

  /** Listens once. */
  once<K extends EventName>(event: K, handler: (data: EventMap[K]) => void): Unsubscribe;
  once(event: string, handler: (data: unknown) => void): Unsubscribe;
  once(event: string, handler: (data: any) => void): Unsubscribe {
    const off = this.on(event, (data: unknown) => {
      off();
      handler(data);
    });
    return off;
  }

  // ---- internals ------------------------------------------------------------------------------

  private emit(event: string, data: unknown): void {
    const set = this.handlers.get(event);
    if (!set) return;
    for (const fn of Array.from(set)) fn(data);
  }

  private send(frame: Frame, queueWhileOffline: boolean): boolean {
    const text = JSON.stringify(frame);
    if (this.ready && this.socket && this.socket.readyState === OPEN) {
      this.socket.send(text);
      return true;
    }
    if (queueWhileOffline) this.queue.push(text);
    return false;
  }

  private async token(): Promise<string | undefined> {
    const { getToken, token } = this.options;
    return getToken ? await getToken() : token;
  }

  private open(): void {
    const Ctor = this.options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!Ctor) {
      this.fail(new SwitchboardError('CONNECT_ERROR', 'No WebSocket: pass options.WebSocket (e.g. the ws package)'));
      return;
    }
    const socket = new Ctor(this.url);
    this.socket = socket;
    socket.onopen = () => {
      this.token().then(
        (token) => {
          if (this.socket !== socket) return;
          const auth: Frame = { type: 'auth', token };
          if (this.sessionId) auth.sessionId = this.sessionId;
          if (this.sessionId && this.offset) auth.offset = this.offset;
          socket.send(JSON.stringify(auth));
        },
        (e: unknown) => {
          if (this.socket !== socket) return;
          const message = `getToken failed: ${e instanceof Error ? e.message : String(e)}`;
          this.socket = null;
          socket.close(1000);
          this.fail(new SwitchboardError('UNAUTHORIZED', message, { cause: e }));
        },
      );
    };
    socket.onmessage = (ev) => {
      if (this.socket !== socket || typeof ev.data !== 'string') return;
      let frame: Frame;
      try {
        frame = JSON.parse(ev.data);
      } catch {
        return;
      }
      this.onFrame(frame);
    };
    socket.onerror = () => undefined;
    socket.onclose = (ev) => {
      if (this.socket !== socket) return;
      this.onClose(ev.code, ev.reason);
    };
  }

  private onFrame(frame: Frame): void {
    switch (frame.type) {
      case 'ready':
        return this.onReady(frame);
      case 'reply': {
        const p = this.pending.get(frame.id);
        if (!p) return;
        this.pending.delete(frame.id);
        clearTimeout(p.timer);
        if (frame.error) p.reject(toSwitchboardError(frame.error));
        else p.resolve(frame.result ?? undefined);
        return;
      }
      case 'event':
        if (typeof frame.offset === 'string') this.offset = frame.offset;
        return this.onEvent(frame.event, frame.data);
      case 'error':
        this.lastServerError = new SwitchboardError(
          frame.code === 'UNAUTHORIZED' ? 'UNAUTHORIZED' : toSwitchboardError(frame).code,
          String(frame.message ?? ''),
        );
        return;
      default:
        return;
    }
  }

  private onReady(frame: Frame): void {
    const resumed = frame.resumed === true;
    const reconnect = this.everConnected;
    this.everConnected = true;
    this.ready = true;
    this.attempts = 0;
    this.sessionId = frame.sessionId;
    if (!resumed || this.offset === null) this.offset = frame.offset ?? null;
    this.lastServerError = null;
    this.errorStore.set(null);
    this.stateStore.set(resumed ? 'recovered' : 'connected');
    const queued = this.queue.splice(0);
    for (const text of queued) this.socket?.send(text);
    for (const p of this.pending.values()) p.sent = true;
    if (!resumed && reconnect) this.rejoin();
  }

  private rejoin(): void {
    for (const roomId of Array.from(this.joined)) {
      this.request<void>('joinRoom', roomId).then(
        () => this.emit('rejoined', { roomId }),
        (err) => {
          const error = toSwitchboardError(err);
          if (error.code === 'DISCONNECTED' || error.code === 'CLOSED') return;
          this.joined.delete(roomId);
          this.roomStates.clear(roomId);
          this.emit('rejoinFailed', { roomId, error });
        },
      );
    }
  }

  private onEvent(event: string, data: any): void {
    switch (event) {
      case 'roomMembers':
        this.roomStates.roomMembers(data);
        break;
      case 'userJoined':
        this.roomStates.userJoined(data);
        break;
      case 'userLeft':
        this.roomStates.userLeft(data);
        break;
      case 'typing':
        this.roomStates.typing(data);
        break;
      case 'tokenExpiring':
        this.refreshToken();
        break;
      case 'error':
        this.lastServerError = toSwitchboardError(data);
        break;
      default:
        break;
    }
    if (!LOCAL_EVENTS.has(event)) this.emit(event, data);
  }

  private refreshToken(): void {
    if (!this.options.getToken) return;
    this.token().then(
      (fresh) => {
        if (fresh) this.request('refreshToken', fresh).catch(() => undefined);
      },
      () => undefined,
    );
  }

  private onClose(code: number, reason: string): void {
    this.socket = null;
    this.ready = false;
    this.resetTyping();
    this.failPending('DISCONNECTED', 'Disconnected before the answer');
    if (!this.wanted) return;
    if (FINAL_CLOSE_CODES.has(code) || this.options.reconnection === false) {
      this.wanted = false;
      const error =
        code === 4401
          ? new SwitchboardError('UNAUTHORIZED', this.lastServerError?.message || reason || 'Unauthorized')
          : (this.lastServerError ?? new SwitchboardError('DISCONNECTED', reason || 'Disconnected by the server'));
      this.fail(error);
      return;
    }
    this.stateStore.set(this.everConnected ? 'reconnecting' : 'connecting');
    const base = this.options.reconnectionDelay ?? 500;
    const max = this.options.reconnectionDelayMax ?? 5000;
    const delay = Math.min(max, base * 2 ** this.attempts) * (0.5 + Math.random() / 2);
    this.attempts++;
    this.retryTimer = setTimeout(() => {
      if (this.wanted && !this.socket) this.open();
    }, delay);
  }

  private fail(error: SwitchboardError): void {
    this.wanted = false;
    this.errorStore.set(error);
    this.stateStore.set('disconnected');
    this.failPending('DISCONNECTED', error.message);
  }

  /**
   * Rejects the requests the connection carried; while reconnecting, those still queued wait
   * for the next connection (or their timeout).
   */
  private failPending(code: 'DISCONNECTED' | 'CLOSED', message: string): void {
    const all = code === 'CLOSED' || !this.wanted;
    if (all) this.queue.length = 0;
    for (const [id, p] of this.pending) {
      if (!all && !p.sent) continue;
      this.pending.delete(id);
      clearTimeout(p.timer);
      p.reject(new SwitchboardError(code, message));
    }
  }

  protected sendTyping(roomId: string, isTyping: boolean): boolean {
    return this.send({ type: 'request', event: isTyping ? 'startTyping' : 'stopTyping', data: roomId }, false);
  }
}

/** Connects to a Switchboard server's `/ws` endpoint. */
export function connect(url: string, options: WsConnectOptions = {}): WsSwitchboardClient {
  return new WsSwitchboardClient(url, options);
}
