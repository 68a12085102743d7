/** Codes the server puts in `cb({code, message})` and in `error` events. */
export type ServerErrorCode =
  | 'ACCESS_DENIED'
  | 'INVALID_ROOM'
  | 'NOT_IN_ROOM'
  | 'INVALID_MESSAGE'
  | 'RATE_LIMITED'
  | 'NOT_REACHABLE'
  | 'INTERNAL';

/**
 * Codes the client adds:
 * - `UNAUTHORIZED`: the server refused the connection (`Authentication required`,
 *   `Invalid token`, `Token expired`, or `getToken` failed);
 * - `CONNECT_ERROR`: the server could not be reached (the client keeps retrying);
 * - `DISCONNECTED`: the connection dropped before the server answered, or the server
 *   disconnected the client;
 * - `TIMEOUT`: no answer within `ackTimeout`;
 * - `CLOSED`: the client was closed with `close()`.
 */
export type ClientErrorCode = 'UNAUTHORIZED' | 'CONNECT_ERROR' | 'DISCONNECTED' | 'TIMEOUT' | 'CLOSED';

export type ErrorCode = ServerErrorCode | ClientErrorCode;

const SERVER_CODES: ReadonlySet<string> = new Set<ServerErrorCode>([
  'ACCESS_DENIED',
  'INVALID_ROOM',
  'NOT_IN_ROOM',
  'INVALID_MESSAGE',
  'RATE_LIMITED',
  'NOT_REACHABLE',
  'INTERNAL',
]);

/** Whether `code` is one of the server's error codes. */
export function isServerErrorCode(code: unknown): code is ServerErrorCode {
  return typeof code === 'string' && SERVER_CODES.has(code);
}

/**
 * Every failure of the SDK: a real `Error` (with a stack) that also carries the contract's
 * `code`. Unlike a plain `Error`, it serializes to `{name, code, message}` with
 * `JSON.stringify`, not to `{}`.
 */
export class SwitchboardError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message);
    Object.setPrototypeOf(this, new.target.prototype);
    this.name = 'SwitchboardError';
    this.code = code;
    if (options && 'cause' in options) {
      Object.defineProperty(this, 'cause', { value: options.cause, configurable: true, writable: true });
    }
  }

  toJSON(): { name: string; code: ErrorCode; message: string } {
    return { name: this.name, code: this.code, message: this.message };
  }
}

/** `instanceof SwitchboardError`, also across two copies of the package (ESM and CJS). */
export function isSwitchboardError(value: unknown): value is SwitchboardError {
  if (value instanceof SwitchboardError) return true;
  return (
    value instanceof Error &&
    value.name === 'SwitchboardError' &&
    typeof (value as { code?: unknown }).code === 'string'
  );
}

/**
 * Turns what a server sent as an error (`{code, message}`) or anything thrown into a
 * `SwitchboardError`; an unknown shape becomes `INTERNAL`.
 */
export function toSwitchboardError(value: unknown): SwitchboardError {
  if (isSwitchboardError(value)) return value;
  if (value && typeof value === 'object') {
    const { code, message } = value as { code?: unknown; message?: unknown };
    const text = typeof message === 'string' ? message : undefined;
    if (isServerErrorCode(code)) return new SwitchboardError(code, text ?? code);
    if (value instanceof Error) return new SwitchboardError('INTERNAL', value.message, { cause: value });
    return new SwitchboardError('INTERNAL', text ?? safeJson(value));
  }
  return new SwitchboardError('INTERNAL', typeof value === 'string' ? value : String(value));
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value);
  } catch {
    return String(value);
  }
}
