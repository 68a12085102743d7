import type { ConnectionState, RoomState } from './client.js';
import type { SwitchboardError } from './errors.js';
import { Store, type Observable } from './observable.js';
import { RoomStates } from './rooms.js';
import { TypingIndicator, type TypingOptions } from './typing.js';
import type { Member } from './types.js';

/**
 * What the Socket.IO client and the plain-WebSocket client have in common above their wires:
 * the observable connection state and error, the rooms the client is in, each room's members
 * and typing users, and the typing helper. A subclass says how a typing event goes out.
 */
export abstract class RoomClientBase {
  /** The connection state, observable. */
  readonly state: Observable<ConnectionState>;
  /** Why the connection failed or ended (null while connected or after an app's disconnect). */
  readonly error: Observable<SwitchboardError | null>;

  protected readonly stateStore: Store<ConnectionState>;
  protected readonly errorStore: Store<SwitchboardError | null>;
  /** The rooms joined (and joined again after a reconnect that did not resume). */
  protected readonly joined = new Set<string>();
  protected readonly roomStates = new RoomStates();
  private readonly typingIndicators = new Map<string, TypingIndicator>();
  private readonly typingOptions: TypingOptions;

  protected constructor(initialState: ConnectionState, typingOptions: TypingOptions) {
    this.stateStore = new Store<ConnectionState>(initialState);
    this.errorStore = new Store<SwitchboardError | null>(null);
    this.state = this.stateStore;
    this.error = this.errorStore;
    this.typingOptions = typingOptions;
  }

  /**
   * Sends `startTyping` (true) or `stopTyping` (false) for `roomId`; false when it could not
   * (offline), which leaves the room's typing helper idle.
   */
  protected abstract sendTyping(roomId: string, isTyping: boolean): boolean;

  /** Shorthand for `state.get()`. */
  get status(): ConnectionState {
    return this.stateStore.get();
  }

  // ---- typing ---------------------------------------------------------------------------------

  /**
   * Call on every keystroke in `roomId`: sends `startTyping` once, and `stopTyping` after
   * `typingIdle` (2 s) without a keystroke. Nothing is sent while offline.
   */
  typing(roomId: string): void {
    let indicator = this.typingIndicators.get(roomId);
    if (!indicator) {
      indicator = new TypingIndicator((isTyping) => this.sendTyping(roomId, isTyping), this.typingOptions);
      this.typingIndicators.set(roomId, indicator);
    }
    indicator.keystroke();
  }

  /** Sends `stopTyping` now if the typing helper had started. */
  stopTyping(roomId: string): void {
    this.typingIndicators.get(roomId)?.stop();
  }

  /** Whether the typing helper has sent `startTyping` for `roomId` and not yet `stopTyping`. */
  isTyping(roomId: string): boolean {
    return this.typingIndicators.get(roomId)?.isTyping ?? false;
  }

  // ---- rooms ----------------------------------------------------------------------------------

  /** The rooms this client is in (and will join again after a reconnect that did not recover). */
  get rooms(): string[] {
    return Array.from(this.joined);
  }

  /** Members and typing users of a room, observable (empty for rooms the client is not in). */
  room(roomId: string): Observable<RoomState> {
    return this.roomStates.store(roomId);
  }

  /** The members of a room, as last announced. */
  members(roomId: string): readonly Member[] {
    return this.roomStates.members(roomId);
  }

  /** The other users typing in a room. */
  typingUsers(roomId: string): readonly Member[] {
    return this.roomStates.typingUsers(roomId);
  }

  /** Forgets a room being left: not joined again, its typing helper idle, its state empty. */
  protected forgetRoom(roomId: string): void {
    this.joined.delete(roomId);
    this.typingIndicators.get(roomId)?.reset();
    this.roomStates.clear(roomId);
  }

  /** Idles every typing helper (the connection is gone: the server ends the typing itself). */
  protected resetTyping(): void {
    for (const indicator of this.typingIndicators.values()) indicator.reset();
  }
}
