import { io, type ManagerOptions, type Socket, type SocketOptions } from 'socket.io-client';

import { SwitchboardError, toSwitchboardError } from './errors.js';
import { RoomClientBase } from './base.js';
import type {
  ChatMessage,
  EventMap,
  EventName,
  HistoryOptions,
  HistoryResult,
  LocalEvents,
  Member,
  PresenceEvent,
  RoomMembersEvent,
  SendResult,
  TypingEvent,
  Unsubscribe,
} from './types.js';

/**
 * - `connecting`: connecting for the first time, or after `connect()`;
 * - `connected`: connected with a new session (first time, or after a reconnect that could not
 *   recover: rooms are then joined again);
 * - `reconnecting`: the connection dropped and the client is trying again;
 * - `recovered`: reconnected within the server's recovery window: rooms and missed events back;
 * - `disconnected`: not connected and not trying (`disconnect()`, `close()`, a refused token,
 *   or the server disconnected the client). `error` tells why, when it was not the app.
 */
export type ConnectionState = 'connecting' | 'connected' | 'reconnecting' | 'recovered' | 'disconnected';

export interface ConnectOptions {
  /** A fixed JWT. */
  token?: string;
  /**
   * Called for every connection attempt, reconnects included, so it can return a fresh
   * token. Takes precedence over `token`. Also called when the server says the token is
   * about to expire (`tokenExpiring`): the client sends the new one (`refreshToken`) by
   * itself and the connection lives on; nothing of it shows in `state`.
   */
  getToken?: () => string | Promise<string>;
  /** Connect at once (default true); else call `connect()`. */
  autoConnect?: boolean;
  /** Milliseconds to wait for the server's answer to a request. Default 10000. */
  ackTimeout?: number;
  /** Milliseconds of silence after which the typing helper sends `stopTyping`. Default 2000. */
  typingIdle?: number;
  /** Milliseconds after which continued typing sends `startTyping` again. Default 3000 (0 = never). */
  typingRefresh?: number;
  /** Passed to `io()` (e.g. `transports`, `path`, `reconnectionDelay`); `auth` is the SDK's. */
  socketOptions?: Partial<ManagerOptions & SocketOptions>;
}

/** What the client knows about a room it is in: members and who else is typing. */
export interface RoomState {
  readonly members: readonly Member[];
  readonly typingUsers: readonly Member[];
}


const LOCAL_EVENTS: ReadonlySet<string> = new Set<keyof LocalEvents>(['rejoined', 'rejoinFailed']);

const DEFAULT_ACK_TIMEOUT_MS = 10_000;

type AnyHandler = (data: any) => void;
type Registration = { event: string; wrapper: (...args: any[]) => void; local: boolean };

/**
 * A connection to a Switchboard server with the chat contract typed. Create it with
 * `connect(url, options)`.
 */
export class SwitchboardClient extends RoomClientBase {
  /** The underlying socket.io-client socket (for what the SDK does not cover). */
  readonly socket: Socket;

  private readonly options: ConnectOptions;
  private readonly ackTimeout: number;
  private readonly pendingJoins = new Map<string, Promise<void>>();
  private readonly roomOps = new Map<string, number>();
  private readonly roomRefs = new Map<string, number>();
  private readonly leaveTimers = new Map<string, ReturnType<typeof setTimeout>>();
  private readonly localHandlers = new Map<string, Set<(data: unknown) => void>>();
  private readonly registrations = new Map<AnyHandler, Registration[]>();
  private readonly internal: Array<[string, (...args: any[]) => void]> = [];
  private readonly managerInternal: Array<[string, (...args: any[]) => void]> = [];
  private everConnected = false;
  private closed = false;
  private tokenError: unknown = null;
  private lastServerError: SwitchboardError | null = null;
  /** A `tokenExpiring` refresh is under way (one at a time). */
  private refreshingToken = false;

  constructor(url: string, options: ConnectOptions = {}) {
    const autoConnect = options.autoConnect ?? true;
    super(autoConnect ? 'connecting' : 'disconnected', {
      idleMs: options.typingIdle,
      refreshMs: options.typingRefresh,
    });
    this.options = options;
    this.ackTimeout = options.ackTimeout ?? DEFAULT_ACK_TIMEOUT_MS;

    this.socket = io(url, {
      ...options.socketOptions,
      // One socket per client: socket.io-client would otherwise share one socket between
      // clients of the same URL.
      forceNew: true,
      autoConnect: false,
      // The callback form: socket.io-client calls it for every connection attempt.
      auth: (cb: (data: object) => void) => this.provideAuth(cb),
    });

    this.listen('connect', () => this.onConnect());
    this.listen('disconnect', (reason: string) => this.onDisconnect(reason));
    this.listen('connect_error', (err: Error) => this.onConnectError(err));
    this.listen('roomMembers', (e: RoomMembersEvent) => this.roomStates.roomMembers(e));
    this.listen('userJoined', (e: PresenceEvent) => this.roomStates.userJoined(e));
    this.listen('userLeft', (e: PresenceEvent) => this.roomStates.userLeft(e));
    this.listen('typing', (e: TypingEvent) => this.roomStates.typing(e));
    this.listen('tokenExpiring', () => this.refreshToken());
    this.listen('error', (e: unknown) => {
      this.lastServerError = toSwitchboardError(e);
    });
    this.listenManager('reconnect_attempt', () => {
      if (!this.closed && this.stateStore.get() !== 'connecting') this.stateStore.set('reconnecting');
    });
    this.listenManager('reconnect_failed', () => this.stateStore.set('disconnected'));

    if (autoConnect) this.socket.connect();
  }

  // ---- connection -----------------------------------------------------------------------------

  /** Whether the connection is up (`connected` or `recovered`). */
  get connected(): boolean {
    return this.socket.connected;
  }

  /** Connects (again) after `autoConnect: false` or `disconnect()`. Rooms are joined again. */
  connect(): this {
    if (this.closed) throw new SwitchboardError('CLOSED', 'The client is closed');
    if (!this.socket.active) {
      this.errorStore.set(null);
      this.stateStore.set('connecting');
      this.socket.connect();
    }
    return this;
  }

  /**
   * Disconnects; `connect()` reconnects and joins the same rooms. Requests made meanwhile
   * wait for the connection (or their `ackTimeout`).
   */
  disconnect(): this {
    this.resetTyping();
    this.socket.disconnect();
    this.errorStore.set(null);
    this.stateStore.set('disconnected');
    return this;
  }

  /** Disconnects for good: later requests reject with `CLOSED`. */
  close(): void {
    if (this.closed) return;
    this.disconnect();
    this.closed = true;
    for (const [event, fn] of this.internal) this.socket.off(event, fn);
    for (const [event, fn] of this.managerInternal) this.socket.io.off(event as any, fn);
    for (const timer of this.leaveTimers.values()) clearTimeout(timer);
    this.leaveTimers.clear();
  }

  // ---- requests -------------------------------------------------------------------------------

  /** Joins a room. The server sends `roomMembers` first. Joining twice is a no-op success. */
  joinRoom(roomId: string): Promise<void> {
    const pending = this.pendingJoins.get(roomId);
    if (pending) return pending;
    const op = this.bumpOp(roomId);
    const p: Promise<void> = this.repeatable<void>('joinRoom', [roomId], () => this.roomOps.get(roomId) === op)
      .then(() => {
        if (this.roomOps.get(roomId) === op) this.joined.add(roomId);
      })
      .finally(() => {
        if (this.pendingJoins.get(roomId) === p) this.pendingJoins.delete(roomId);
      });
    this.pendingJoins.set(roomId, p);
    return p;
  }

  /** Leaves a room (forgotten at once: a reconnect will not join it again). */
  leaveRoom(roomId: string): Promise<void> {
    this.bumpOp(roomId);
    this.pendingJoins.delete(roomId);
    this.forgetRoom(roomId);
    return this.request<void>('leaveRoom', [roomId]);
  }

  /** Sends a message to a room you are in (stopping your typing indicator there first). */
  sendMessage(roomId: string, text: string): Promise<SendResult> {
    this.stopTyping(roomId);
    return this.request<SendResult>('sendMessage', [{ roomId, text }]);
  }

  /** Earlier messages of a room you are in, oldest first. */
  getHistory(roomId: string, options: HistoryOptions = {}): Promise<HistoryResult> {
    const query: { roomId: string; before?: string; limit?: number } = { roomId };
    if (options.before !== undefined) query.before = options.before;
    if (options.limit !== undefined) query.limit = options.limit;
    return this.repeatable<HistoryResult | undefined>('getHistory', [query]).then((r) => ({
      messages: r?.messages ?? [],
    }));
  }

  /** Relays `data` to every connection of `toUserId` (who must share a room with you). */
  signal(toUserId: string, data: unknown): Promise<void> {
    return this.request<void>('signal', [{ toUserId, data }]).then(() => undefined);
  }

  // ---- rooms ----------------------------------------------------------------------------------

  /**
   * Joins `roomId` on behalf of one user of it (a component); `releaseRoom` undoes it. The room
   * is left when its last user releases it. Used by `useRoom`.
   */
  acquireRoom(roomId: string): Promise<void> {
    this.roomRefs.set(roomId, (this.roomRefs.get(roomId) ?? 0) + 1);
    const timer = this.leaveTimers.get(roomId);
    if (timer !== undefined) {
      clearTimeout(timer);
      this.leaveTimers.delete(roomId);
    }
    if (this.joined.has(roomId)) return Promise.resolve();
    return this.joinRoom(roomId);
  }

  /** See `acquireRoom`. */
  releaseRoom(roomId: string): void {
    const refs = (this.roomRefs.get(roomId) ?? 0) - 1;
    if (refs > 0) {
      this.roomRefs.set(roomId, refs);
      return;
    }
    this.roomRefs.delete(roomId);
    if (this.closed || this.leaveTimers.has(roomId)) return;
    // Deferred, so that an unmount followed by a mount (React StrictMode, a re-render with
    // a new key) does not leave and join again.
    const timer = setTimeout(() => {
      this.leaveTimers.delete(roomId);
      const settle = this.pendingJoins.get(roomId) ?? Promise.resolve();
      void settle
        .catch(() => undefined)
        .then(() => {
          if (!this.closed && !this.roomRefs.has(roomId) && this.joined.has(roomId)) {
            this.leaveRoom(roomId).catch(() => undefined);
          }
        });
    }, 0);
    this.leaveTimers.set(roomId, timer);
  }

  // ---- events ---------------------------------------------------------------------------------

  /**
   * Listens to a server event (`message`, `roomMembers`, `userJoined`, `userLeft`, `typing`,
   * `signal`, `error`, or any event a host emits, e.g. `notification`) or to a client event
   * (`rejoined`, `rejoinFailed`). The handler gets the event's payload only (room broadcasts
   * also carry a recovery offset, which is dropped). Returns the function that removes this
   * listener and no other.
   */
  on<K extends EventName>(event: K, handler: (data: EventMap[K]) => void): Unsubscribe;
  on(event: string, handler: (data: unknown) => void): Unsubscribe;
  on(event: string, handler: AnyHandler): Unsubscribe {
    let registration: Registration;
    if (LOCAL_EVENTS.has(event)) {
      const wrapper = (data: unknown) => handler(data);
      let set = this.localHandlers.get(event);
      if (!set) this.localHandlers.set(event, (set = new Set()));
      set.add(wrapper);
      registration = { event, wrapper, local: true };
    } else {
      const wrapper =
        event === 'error'
          ? (data: unknown) => handler(toSwitchboardError(data))
          : (data: unknown) => handler(data);
      this.socket.on(event, wrapper);
      registration = { event, wrapper, local: false };
    }
    let list = this.registrations.get(handler);
    if (!list) this.registrations.set(handler, (list = []));
    list.push(registration);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.removeRegistration(handler, registration);
    };
  }

  /** Removes one registration of `handler` for `event` (the one `on` made). */
  off<K extends EventName>(event: K, handler: (data: EventMap[K]) => void): void;
  off(event: string, handler: (data: unknown) => void): void;
  off(event: string, handler: AnyHandler): void {
    const list = this.registrations.get(handler);
    const registration = list?.find((r) => r.event === event);
    if (registration) this.removeRegistration(handler, registration);
  }

  /** Listens once. */
  once<K extends EventName>(event: K, handler: (data: EventMap[K]) => void): Unsubscribe;
  once(event: string, handler: (data: unknown) => void): Unsubscribe;
  once(event: string, handler: AnyHandler): Unsubscribe {
    const off = this.on(event, (data: unknown) => {
      off();
      handler(data);
    });
    return off;
  }

  private removeRegistration(handler: AnyHandler, registration: Registration): void {
    const list = this.registrations.get(handler);
    if (list) {
      const i = list.indexOf(registration);
      if (i !== -1) list.splice(i, 1);
      if (list.length === 0) this.registrations.delete(handler);
    }
    if (registration.local) {
      this.localHandlers.get(registration.event)?.delete(registration.wrapper);
    } else {
      this.socket.off(registration.event, registration.wrapper);
    }
  }

  private emitLocal<K extends keyof LocalEvents>(event: K, data: LocalEvents[K]): void {
    const set = this.localHandlers.get(event);
    if (!set) return;
    for (const fn of Array.from(set)) fn(data);
  }

  // ---- internals ------------------------------------------------------------------------------

  private request<T>(event: string, args: unknown[]): Promise<T> {
    if (this.closed) return Promise.reject(new SwitchboardError('CLOSED', 'The client is closed'));
    return new Promise<T>((resolve, reject) => {
      this.socket.timeout(this.ackTimeout).emit(event, ...args, (failure: Error | null, err: unknown, result: T) => {
        if (failure) {
          reject(
            /timed out/i.test(failure.message)
              ? new SwitchboardError('TIMEOUT', `No answer to ${event} within ${this.ackTimeout} ms`, { cause: failure })
              : new SwitchboardError('DISCONNECTED', `Disconnected before the answer to ${event}`, { cause: failure }),
          );
        } else if (err !== null && err !== undefined) {
          reject(toSwitchboardError(err));
        } else {
          resolve(result);
        }
      });
    });
  }

  /**
   * A request that is safe to send twice (`joinRoom`, `getHistory`): when the connection drops
   * before the answer, it is sent again once the client is back (if that takes less than
   * `ackTimeout`).
   */
  private repeatable<T>(event: string, args: unknown[], stillWanted: () => boolean = () => true): Promise<T> {
    return this.request<T>(event, args).catch((err: SwitchboardError) => {
      if (err.code !== 'DISCONNECTED' || !stillWanted()) throw err;
      return this.backOnline().then(
        () => this.repeatable<T>(event, args, stillWanted),
        () => {
          throw err;
        },
      );
    });
  }

  /** Resolves when connected again; rejects if that takes over `ackTimeout` or will not happen. */
  private backOnline(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (this.socket.connected) return resolve();
      if (this.closed || this.stateStore.get() === 'disconnected') return reject();
      const finish = (settle: () => void) => {
        clearTimeout(timer);
        unsubscribe();
        settle();
      };
      const timer = setTimeout(() => finish(reject), this.ackTimeout);
      const unsubscribe = this.stateStore.subscribe((state) => {
        if (state === 'connected' || state === 'recovered') finish(resolve);
        else if (state === 'disconnected') finish(reject);
      });
    });
  }

  private provideAuth(cb: (data: object) => void): void {
    const { getToken, token } = this.options;
    this.tokenError = null;
    if (!getToken) {
      cb(token === undefined ? {} : { token });
      return;
    }
    let pending: Promise<string>;
    try {
      pending = Promise.resolve(getToken());
    } catch (e) {
      pending = Promise.reject(e);
    }
    pending.then(
      (fresh) => cb(fresh === undefined || fresh === null ? {} : { token: fresh }),
      (e) => {
        this.tokenError = e;
        cb({}); // the server refuses with "Authentication required"
      },
    );
  }

  /**
   * The server warned that the connection's token expires soon: a fresh one from `getToken`
   * goes to the server as `refreshToken`. Without `getToken`, or when it fails or the server
   * refuses the token, nothing is done here: the server ends the connection at the old
   * token's expiry and the reconnect asks `getToken` (or uses `token`) as any reconnect does.
   */
  private refreshToken(): void {
    const { getToken } = this.options;
    if (!getToken || this.refreshingToken) return;
    this.refreshingToken = true;
    let pending: Promise<string>;
    try {
      pending = Promise.resolve(getToken());
    } catch (e) {
      pending = Promise.reject(e);
    }
    pending
      .then(
        (fresh) =>
          new Promise<void>((resolve) => {
            if (!fresh || !this.socket.connected) {
              resolve();
              return;
            }
            this.socket.timeout(this.ackTimeout).emit('refreshToken', fresh, () => resolve());
          }),
      )
      .catch(() => undefined)
      .finally(() => {
        this.refreshingToken = false;
      });
  }

  private listen(event: string, fn: (...args: any[]) => void): void {
    this.socket.on(event, fn);
    this.internal.push([event, fn]);
  }

  private listenManager(event: string, fn: (...args: any[]) => void): void {
    this.socket.io.on(event as any, fn);
    this.managerInternal.push([event, fn]);
  }

  private onConnect(): void {
    const recovered = this.socket.recovered === true;
    const reconnect = this.everConnected;
    this.everConnected = true;
    this.lastServerError = null;
    this.errorStore.set(null);
    this.stateStore.set(recovered ? 'recovered' : 'connected');
    if (!recovered && reconnect) this.rejoin();
  }

  private rejoin(): void {
    for (const roomId of Array.from(this.joined)) {
      this.roomStates.clearTyping(roomId);
      const op = this.roomOps.get(roomId);
      this.request<void>('joinRoom', [roomId]).then(
        () => {
          if (this.roomOps.get(roomId) === op && this.joined.has(roomId)) this.emitLocal('rejoined', { roomId });
        },
        (err) => {
          const error = toSwitchboardError(err);
          // Dropped again before the answer: the next connect tries again.
          if (error.code === 'DISCONNECTED' || error.code === 'CLOSED') return;
          if (this.roomOps.get(roomId) !== op || !this.joined.delete(roomId)) return;
          this.roomStates.clear(roomId);
          this.emitLocal('rejoinFailed', { roomId, error });
        },
      );
    }
  }

  private onDisconnect(reason: string): void {
    this.resetTyping();
    if (this.socket.active) {
      this.stateStore.set('reconnecting');
      return;
    }
    if (reason === 'io server disconnect') {
      this.errorStore.set(
        this.lastServerError ?? new SwitchboardError('DISCONNECTED', 'Disconnected by the server'),
      );
    }
    this.stateStore.set('disconnected');
  }

  private onConnectError(err: Error): void {
    if (this.socket.active) {
      // Not reached (server down, network): socket.io-client tries again.
      this.errorStore.set(new SwitchboardError('CONNECT_ERROR', err.message, { cause: err }));
      if (this.stateStore.get() !== 'connecting') this.stateStore.set('reconnecting');
      return;
    }
    // Refused by the server: no retry.
    const message =
      this.tokenError !== null
        ? `getToken failed: ${this.tokenError instanceof Error ? this.tokenError.message : String(this.tokenError)}`
        : err.message;
    this.errorStore.set(new SwitchboardError('UNAUTHORIZED', message, { cause: this.tokenError ?? err }));
    this.stateStore.set('disconnected');
  }

  protected sendTyping(roomId: string, isTyping: boolean): boolean {
    if (this.closed || !this.socket.connected) return false;
    // Best effort: a refusal (e.g. NOT_IN_ROOM) is answered in the ack and ignored.
    this.socket.emit(isTyping ? 'startTyping' : 'stopTyping', roomId, () => undefined);
    return true;
  }

  private bumpOp(roomId: string): number {
    const op = (this.roomOps.get(roomId) ?? 0) + 1;
    this.roomOps.set(roomId, op);
    return op;
  }
}

/** Connects to a Switchboard server. */
export function connect(url: string, options: ConnectOptions = {}): SwitchboardClient {
  return new SwitchboardClient(url, options);
}

/** Merges messages into a list sorted by id (oldest first), without duplicates. */
export function mergeMessages(list: readonly ChatMessage[], incoming: readonly ChatMessage[]): ChatMessage[] {
  if (incoming.length === 0) return list as ChatMessage[];
  const seen = new Set(list.map((m) => m.id));
  const fresh = incoming.filter((m) => {
    if (seen.has(m.id)) return false;
    seen.add(m.id);
    return true;
  });
  if (fresh.length === 0) return list as ChatMessage[];
  const last = list.length ? list[list.length - 1]!.id : '';
  const inOrder = fresh.every((m, i) => m.id > (i === 0 ? last : fresh[i - 1]!.id));
  if (inOrder) return [...list, ...fresh];
  return [...list, ...fresh].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}
