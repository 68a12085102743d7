import type { RoomState } from './client.js';
import { Store } from './observable.js';
import type { Member, PresenceEvent, RoomMembersEvent, TypingEvent } from './types.js';

const EMPTY_ROOM: RoomState = Object.freeze({
  members: Object.freeze([]) as readonly Member[],
  typingUsers: Object.freeze([]) as readonly Member[],
});

/**
 * Each room's members and typing users as the server's presence events describe them: one
 * observable store per room. Shared by the Socket.IO client and the plain-WebSocket client,
 * which receive the same events over different wires.
 */
export class RoomStates {
  private readonly stores = new Map<string, Store<RoomState>>();

  /** The room's store, made empty on first use. */
  store(roomId: string): Store<RoomState> {
    let store = this.stores.get(roomId);
    if (!store) this.stores.set(roomId, (store = new Store<RoomState>(EMPTY_ROOM)));
    return store;
  }

  /** The members of a room, as last announced. */
  members(roomId: string): readonly Member[] {
    return this.stores.get(roomId)?.get().members ?? EMPTY_ROOM.members;
  }

  /** The other users typing in a room. */
  typingUsers(roomId: string): readonly Member[] {
    return this.stores.get(roomId)?.get().typingUsers ?? EMPTY_ROOM.typingUsers;
  }

  /** Forgets a room's members and typing users (the client left it). */
  clear(roomId: string): void {
    this.stores.get(roomId)?.set(EMPTY_ROOM);
  }

  /** Forgets who was typing (the connection dropped: their stops may have been missed). */
  clearTyping(roomId: string): void {
    const store = this.stores.get(roomId);
    if (store) store.set({ members: store.get().members, typingUsers: EMPTY_ROOM.typingUsers });
  }

  /** `roomMembers`: the whole member list. */
  roomMembers(e: RoomMembersEvent): void {
    if (!e || typeof e.roomId !== 'string' || !Array.isArray(e.members)) return;
    const store = this.store(e.roomId);
    const members = e.members.map((m) => ({ userId: m.userId, username: m.username }));
    const ids = new Set(members.map((m) => m.userId));
    store.set({ members, typingUsers: store.get().typingUsers.filter((t) => ids.has(t.userId)) });
  }

  /** `userJoined`. */
  userJoined(e: PresenceEvent): void {
    if (!e || typeof e.roomId !== 'string') return;
    const store = this.store(e.roomId);
    const state = store.get();
    if (state.members.some((m) => m.userId === e.userId)) return;
    store.set({ members: [...state.members, { userId: e.userId, username: e.username }], typingUsers: state.typingUsers });
  }

  /** `userLeft`. */
  userLeft(e: PresenceEvent): void {
    if (!e || typeof e.roomId !== 'string') return;
    const store = this.stores.get(e.roomId);
    if (!store) return;
    const state = store.get();
    store.set({
      members: state.members.filter((m) => m.userId !== e.userId),
      typingUsers: state.typingUsers.filter((m) => m.userId !== e.userId),
    });
  }

  /** `typing`. */
  typing(e: TypingEvent): void {
    if (!e || typeof e.roomId !== 'string') return;
    const store = this.store(e.roomId);
    const state = store.get();
    const present = state.typingUsers.some((m) => m.userId === e.userId);
    if (e.isTyping && !present) {
      store.set({ members: state.members, typingUsers: [...state.typingUsers, { userId: e.userId, username: e.username }] });
    } else if (!e.isTyping && present) {
      store.set({ members: state.members, typingUsers: state.typingUsers.filter((m) => m.userId !== e.userId) });
    }
  }
}
