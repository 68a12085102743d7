import type { SwitchboardError } from './errors.js';

/** A stored room message, as `message` events and `getHistory` deliver it. */
export interface ChatMessage {
  /** Unique and time-sortable: comparing ids as strings orders messages. */
  id: string;
  roomId: string;
  text: string;
  userId: string;
  username: string;
  /** ISO-8601 UTC. */
  timestamp: string;
}

/** A user present in a room (once per user, not per tab). */
export interface Member {
  userId: string;
  username: string;
}

/** `roomMembers`: sent to the joiner on join. */
export interface RoomMembersEvent {
  roomId: string;
  members: Member[];
}

/** `userJoined` / `userLeft`: a user's first connection came, or its last one went. */
export interface PresenceEvent {
  roomId: string;
  userId: string;
  username: string;
}

/** `typing`: someone else started or stopped typing. */
export interface TypingEvent {
  roomId: string;
  userId: string;
  username: string;
  isTyping: boolean;
}

/** `signal`: a WebRTC signaling payload relayed from another user. */
export interface SignalEvent<Data = unknown> {
  fromUserId: string;
  fromUsername: string;
  data: Data;
}

/** What `sendMessage` resolves to. */
export interface SendResult {
  id: string;
  timestamp: string;
}

/** `getHistory` options: messages before the message id `before`, at most `limit` (1–100, default 50). */
export interface HistoryOptions {
  before?: string;
  limit?: number;
}

/** What `getHistory` resolves to: oldest first. */
export interface HistoryResult {
  messages: ChatMessage[];
}

/** The server's events, by name, with the payload each handler receives. */
export interface ServerEvents {
  message: ChatMessage;
  roomMembers: RoomMembersEvent;
  userJoined: PresenceEvent;
  userLeft: PresenceEvent;
  typing: TypingEvent;
  signal: SignalEvent;
  /** A failure without a callback, e.g. `RATE_LIMITED` "Disconnected for flooding". */
  error: SwitchboardError;
}

/** Events the client itself emits. */
export interface LocalEvents {
  /** A room was joined again after a reconnect that did not recover the session. */
  rejoined: { roomId: string };
  /** Joining a room again after such a reconnect failed; the room is forgotten. */
  rejoinFailed: { roomId: string; error: SwitchboardError };
}

export type EventMap = ServerEvents & LocalEvents;
export type EventName = keyof EventMap;
export type Handler<K extends EventName> = (data: EventMap[K]) => void;

/** Removes the listener it was returned for (and only that one). */
export type Unsubscribe = () => void;
