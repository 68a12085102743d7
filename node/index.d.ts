dts-header.d.ts
/**
 * Which binding artifact the generated loader actually loaded: `'native'` for
 * a native addon, otherwise the `platformArchABI` of the WASI flavor. Every
 * flavor napi-rs can build is listed, because `NAPI_RS_NATIVE_LIBRARY_PATH`
 * can point the loader at a WASI artifact this package does not build itself.
 */
export declare const __napiBindingTarget: 'native' | 'wasm32-wasi' | 'wasm32-wasip1'

/** A plaintext pipe between a Node TLS socket and the engine. */
export declare class Bridge {
  /** Bytes Node decrypted from the client. */
  write(data: Buffer): void
  /** The client closed its side. */
  end(): void
}

/** The native engine behind `Engine`. */
export declare class NativeEngine {
  /**
   * Starts an engine on its own runtime. Callbacks are normalized by `index.js` to
   * `(value) => Promise<{ok} | {error}>`; `onDocumentUpdate(docName, update)` is called
   * as is, and must not throw.
   */
  constructor(config: NativeConfig, authenticate: ((arg: any) => Promise<any>) | undefined | null, authorizeRoom: ((arg: any) => Promise<any>) | undefined | null, storeMessage: ((arg: any) => Promise<any>) | undefined | null, onEvent: (arg: any) => Promise<any>, onActivity: (arg: boolean) => void, onDocumentUpdate?: ((arg0: string, arg1: Buffer) => void) | undefined | null)
  /** Listens on `host:port` itself; returns the bound port. */
  listen(host: string, port: number): number
  /** Whether the engine serves this path (`/socket.io/`, `/yjs/…`, `/healthz`, `/metrics`). */
  serves(path: string): boolean
  /**
   * Takes over an upgraded TCP socket: duplicates `fd` now (the caller destroys its
   * handle right after), then answers the upgrade and serves the WebSocket. `head` holds
   * the bytes Node already read past the request head.
   */
  adopt(fd: number, method: string, url: string, rawHeaders: Array<string>, head: Buffer | undefined | null, address: string, port: number): void
  /**
   * Serves an upgrade over a plaintext pipe (TLS sockets, whose bytes only Node can
   * decrypt). `onData(chunk)` gets the engine's bytes, `onData(null)` its end.
   */
  openBridge(method: string, url: string, rawHeaders: Array<string>, head: Buffer | undefined | null, address: string, port: number, onData: (arg: Buffer | undefined | null) => void): Bridge
  /**
   * Serves a plain HTTP request (long-polling, health, metrics); `done(answer)` gets the
   * answer, possibly much later (a long poll).
   */
  handleHttp(method: string, url: string, rawHeaders: Array<string>, body: Buffer | undefined | null, address: string, port: number, done: (arg: HttpAnswer) => void): void
  /** Lets JS handle a client event (see `engine.on`). */
  registerEvent(name: string): void
  /** Emits to every socket in a room; returns how many it reached. */
  emitToRoom(room: string, event: string, data: any): number
  /** Emits to every connection of a user; returns how many it reached. */
  emitToUser(userId: string, event: string, data: any): number
  /** Joins a connected socket to a room. */
  socketJoin(socketId: string, room: string): boolean
  /** Removes a connected socket from a room. */
  socketLeave(socketId: string, room: string): boolean
  /** Emits to one socket. */
  socketEmit(socketId: string, event: string, data: any): boolean
  /** The rooms of a socket. */
  socketRooms(socketId: string): Array<string>
  /** Disconnects one socket. */
  socketDisconnect(socketId: string): boolean
  /** The users present in a room: `[{userId, username}]`. */
  presence(room: string): any
  /** Disconnects every connection of a user; returns how many there were. */
  disconnectUser(userId: string): number
  /** Counters: connections, sockets, rooms, messages. */
  stats(): any
  /** Closes every connection and stops the engine's runtime. Idempotent. */
  close(): void
}

/** An HTTP answer for `res`. */
export interface HttpAnswer {
  /** Status code. */
  status: number
  /** Headers as `[name, value, name, value, …]`. */
  headers: Array<string>
  /** Body. */
  body: Buffer
}

/** Engine settings; every field is optional and defaults as in the Rust `Config`. */
export interface NativeConfig {
  /** HS256 secret for verifying tokens. */
  jwtSecret?: string
  /** RS256/ES256 public key (PEM text) for verifying tokens. */
  jwtPublicKey?: string
  /** `open` (default) or `claims`. */
  roomPolicy?: string
  /** Milliseconds between pings (25000). */
  pingInterval?: number
  /** Milliseconds to wait for a pong (20000). */
  pingTimeout?: number
  /** Largest payload in bytes (1000000). */
  maxPayload?: number
  /** Allowed browser origins (all when empty). */
  corsOrigins?: Array<string>
  /** Requests per second per connection, 0 = off (20). */
  rateLimitPerSecond?: number
  /** Burst above the rate (40). */
  rateLimitBurst?: number
  /** Frames queued per connection before it is dropped as a slow reader (1024). */
  outboundQueueFrames?: number
  /** Bytes queued per connection before it is dropped as a slow reader (4 MiB). */
  outboundQueueBytes?: number
  /** Milliseconds after which typing stops by itself (5000). */
  typingTimeout?: number
  /** Milliseconds a dropped connection may recover its state, 0 = off (120000). */
  recoveryWindow?: number
  /** Milliseconds a dropped connection still counts in presence (2000). */
  presenceGrace?: number
  /** Directory for history (in memory without it). */
  dataDir?: string
  /** Redis URL for clustering. */
  redisUrl?: string
  /** Key guarding the server HTTP API. */
  apiKey?: string
  /** Most simultaneous connections, 0 = no limit. */
  maxConnections?: number
  /** Worker threads of the engine's runtime (one per core). */
  workerThreads?: number
  /** Milliseconds a JS callback may take before it fails (10000). */
  callbackTimeout?: number
  /** Milliseconds a Yjs document without connections stays in memory (300000). */
  yjsIdleUnload?: number
  /** Largest Yjs message a client may send, in bytes (4 MiB). */
  yjsMaxUpdateBytes?: number
  /** Largest Yjs document, in bytes (16 MiB). */
  yjsMaxDocumentBytes?: number
}
