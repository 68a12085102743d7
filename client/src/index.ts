export { connect, mergeMessages, SwitchboardClient } from './client.js';
export type { ConnectionState, ConnectOptions, RoomState } from './client.js';
export { isServerErrorCode, isSwitchboardError, SwitchboardError, toSwitchboardError } from './errors.js';
export type { ClientErrorCode, ErrorCode, ServerErrorCode } from './errors.js';
export { Store } from './observable.js';
export type { Observable } from './observable.js';
export { DEFAULT_TYPING_IDLE_MS, DEFAULT_TYPING_REFRESH_MS, TypingIndicator } from './typing.js';
export type { TypingOptions } from './typing.js';
export type {
  ChatMessage,
  EventMap,
  EventName,
  Handler,
  HistoryOptions,
  HistoryResult,
  LocalEvents,
  Member,
  PresenceEvent,
  RoomMembersEvent,
  SendResult,
  ServerEvents,
  SignalEvent,
  TypingEvent,
  Unsubscribe,
} from './types.js';
