import {
  createContext,
  createElement,
  useCallback,
  useContext,
  useEffect,
  useRef,
  useState,
  useSyncExternalStore,
  type ReactNode,
} from 'react';

import { connect, mergeMessages, type ConnectionState, type ConnectOptions, type SwitchboardClient } from '../client.js';
import { toSwitchboardError, type SwitchboardError } from '../errors.js';
import type { ChatMessage, Member, SendResult } from '../types.js';

const SwitchboardContext = createContext<SwitchboardClient | null>(null);

export type SwitchboardProviderProps = {
  children?: ReactNode;
} & (
  | {
      /** A client made with `connect()`; the provider never closes it. */
      client: SwitchboardClient;
      url?: undefined;
      token?: undefined;
      getToken?: undefined;
      options?: undefined;
    }
  | {
      client?: undefined;
      /** The server: the provider connects on mount and closes on unmount (remount with a `key` to change it). */
      url: string;
      token?: string;
      /** Called for every connection attempt; the latest function passed is used. */
      getToken?: () => string | Promise<string>;
      options?: Omit<ConnectOptions, 'token' | 'getToken' | 'autoConnect'>;
    }
);

/** Makes a client available to `useConnection`, `useRoom` and `useSwitchboard` below it. */
export function SwitchboardProvider(props: SwitchboardProviderProps): ReactNode {
  const tokenRef = useRef<{ token?: string; getToken?: () => string | Promise<string> }>({});
  tokenRef.current = { token: props.token, getToken: props.getToken };
  const [owned] = useState<SwitchboardClient | null>(() => {
    if (props.client) return null;
    if (!props.url) throw new Error('SwitchboardProvider needs a `client` or a `url`');
    return connect(props.url, {
      ...props.options,
      autoConnect: false, // connected by the effect below (no connection from a discarded render)
      getToken: () => {
        const { token, getToken } = tokenRef.current;
        return getToken ? getToken() : (token as string);
      },
    });
  });
  const mounts = useRef(0);
  useEffect(() => {
    if (!owned) return undefined;
    mounts.current += 1;
    owned.connect();
    return () => {
      mounts.current -= 1;
      // Deferred: StrictMode's unmount + mount keeps the connection.
      setTimeout(() => {
        if (mounts.current === 0) owned.close();
      }, 0);
    };
  }, [owned]);
  const client = props.client ?? owned;
  return createElement(SwitchboardContext.Provider, { value: client }, props.children);
}

/** The client of the nearest `SwitchboardProvider`. */
export function useSwitchboard(): SwitchboardClient {
  const client = useContext(SwitchboardContext);
  if (!client) throw new Error('useSwitchboard, useConnection and useRoom must be used inside <SwitchboardProvider>');
  return client;
}

export interface UseConnectionResult {
  client: SwitchboardClient;
  /** `connecting`, `connected`, `reconnecting`, `recovered` or `disconnected`. */
  status: ConnectionState;
  /** `connected` or `recovered`. */
  connected: boolean;
  /** Why the connection failed or ended (e.g. `UNAUTHORIZED` "Token expired"). */
  error: SwitchboardError | null;
}

/** The connection state, re-rendering on changes. */
export function useConnection(): UseConnectionResult {
  const client = useSwitchboard();
  const status = useSyncExternalStore(client.state.subscribe, client.state.get, client.state.get);
  const error = useSyncExternalStore(client.error.subscribe, client.error.get, client.error.get);
  return { client, status, connected: status === 'connected' || status === 'recovered', error };
}

/** `joining` until the room is joined and its history loaded; `error` if either failed. */
export type RoomStatus = 'joining' | 'joined' | 'error';

export interface UseRoomOptions {
  /** Messages loaded on join (1–100). Default 50. */
  historyLimit?: number;
}

export interface UseRoomResult {
  /** History first, then new messages as they arrive; oldest first, no duplicates. */
  messages: ChatMessage[];
  /** Who is in the room (per user, not per tab). */
  members: readonly Member[];
  /** The other users typing in the room. */
  typingUsers: readonly Member[];
  /** Sends a message (stops your typing indicator); rejects with a `SwitchboardError`, also set as `error`. */
  send: (text: string) => Promise<SendResult>;
  /** Call on every keystroke: `startTyping` once, `stopTyping` after 2 s of silence. */
  typing: () => void;
  status: RoomStatus;
  /** The last failure in this room (join, history, rejoin, send). */
  error: SwitchboardError | null;
}

const NO_MESSAGES: ChatMessage[] = [];

/**
 * Joins `roomId` while the component is mounted (the room is left when the last component
 * using it unmounts), loads its history and keeps messages, members and typing users current.
 * Each call registers its own listeners and removes exactly those on unmount.
 */
export function useRoom(roomId: string, options: UseRoomOptions = {}): UseRoomResult {
  const client = useSwitchboard();
  const historyLimit = options.historyLimit;
  const [view, setView] = useState<{
    client: SwitchboardClient;
    roomId: string;
    messages: ChatMessage[];
    status: RoomStatus;
    error: SwitchboardError | null;
  }>(() => ({ client, roomId, messages: NO_MESSAGES, status: 'joining', error: null }));

  const roomStore = client.room(roomId);
  const room = useSyncExternalStore(roomStore.subscribe, roomStore.get, roomStore.get);

  useEffect(() => {
    let active = true;
    const update = (
      change: (v: { messages: ChatMessage[]; status: RoomStatus; error: SwitchboardError | null }) => Partial<{
        messages: ChatMessage[];
        status: RoomStatus;
        error: SwitchboardError | null;
      }>,
    ) => {
      if (!active) return;
      setView((prev) => {
        const base =
          prev.client === client && prev.roomId === roomId
            ? prev
            : { client, roomId, messages: NO_MESSAGES, status: 'joining' as RoomStatus, error: null };
        return { ...base, ...change(base) };
      });
    };
    const fail = (e: unknown) => update(() => ({ status: 'error', error: toSwitchboardError(e) }));
    const loadHistory = () =>
      client
        .getHistory(roomId, historyLimit === undefined ? {} : { limit: historyLimit })
        .then(({ messages }) => update((v) => ({ messages: mergeMessages(v.messages, messages), status: 'joined', error: null })));

    update(() => ({}));
    const offMessage = client.on('message', (m) => {
      if (m && m.roomId === roomId) update((v) => ({ messages: mergeMessages(v.messages, [m]) }));
    });
    const offRejoined = client.on('rejoined', (e) => {
      if (e.roomId === roomId) loadHistory().catch(fail);
    });
    const offRejoinFailed = client.on('rejoinFailed', (e) => {
      if (e.roomId === roomId) fail(e.error);
    });
    client
      .acquireRoom(roomId)
      .then(() => (active ? loadHistory() : undefined))
      .catch(fail);
    return () => {
      active = false;
      offMessage();
      offRejoined();
      offRejoinFailed();
      client.releaseRoom(roomId);
    };
  }, [client, roomId, historyLimit]);

  const send = useCallback(
    (text: string) =>
      client.sendMessage(roomId, text).catch((e: unknown) => {
        const error = toSwitchboardError(e);
        setView((prev) => (prev.client === client && prev.roomId === roomId ? { ...prev, error } : prev));
        throw error;
      }),
    [client, roomId],
  );
  const typing = useCallback(() => client.typing(roomId), [client, roomId]);

  const current = view.client === client && view.roomId === roomId;
  return {
    messages: current ? view.messages : NO_MESSAGES,
    members: room.members,
    typingUsers: room.typingUsers,
    send,
    typing,
    status: current ? view.status : 'joining',
    error: current ? view.error : null,
  };
}

export type { ConnectionState, SwitchboardClient } from '../client.js';
export type { SwitchboardError } from '../errors.js';
export type { ChatMessage, Member, SendResult } from '../types.js';
