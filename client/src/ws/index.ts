// `@switchboard/client/ws`: the same typed client over the plain-WebSocket endpoint (`/ws`,
// docs/websocket-protocol.md), without socket.io-client.
export { connect, WsSwitchboardClient } from './client.js';
export type { WebSocketLike, WebSocketConstructor, WsConnectOptions } from './client.js';
export type { ConnectionState, RoomState } from '../client.js';
export { isServerErrorCode, isSwitchboardError, SwitchboardError, toSwitchboardError } from '../errors.js';
export type { ClientErrorCode, ErrorCode, ServerErrorCode } from '../errors.js';
export type {
  ChatMessage,
  EventMap,
  EventName,
  HistoryOptions,
  HistoryResult,
  Member,
  PresenceEvent,
  RoomMembersEvent,
  SendResult,
  ServerEvents,
  SignalEvent,
  TypingEvent,
  Unsubscribe,
} from '../types.js';
