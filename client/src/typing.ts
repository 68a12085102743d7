/** Timing of a `TypingIndicator`. */
export interface TypingOptions {
  /** Milliseconds without a keystroke after which `stopTyping` is sent. Default 2000. */
  idleMs?: number;
  /**
   * While keystrokes go on, `startTyping` is sent again after this many milliseconds, so that
   * the server's auto-stop (5 s by default) does not end a long burst of typing. 0 = never.
   * Default 3000.
   */
  refreshMs?: number;
}

export const DEFAULT_TYPING_IDLE_MS = 2000;
export const DEFAULT_TYPING_REFRESH_MS = 3000;

/**
 * The typing state of one room: the first keystroke sends `start`, later keystrokes only
 * postpone `stop`, which is sent after `idleMs` of silence (or at once with `stop()`).
 * `send` returns false when it could not send (e.g. offline); the indicator then stays idle.
 */
export class TypingIndicator {
  private active = false;
  private startedAt = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly idleMs: number;
  private readonly refreshMs: number;

  constructor(
    private readonly send: (isTyping: boolean) => boolean,
    options: TypingOptions = {},
  ) {
    this.idleMs = options.idleMs ?? DEFAULT_TYPING_IDLE_MS;
    this.refreshMs = options.refreshMs ?? DEFAULT_TYPING_REFRESH_MS;
  }

  /** Whether `start` was sent and `stop` not yet. */
  get isTyping(): boolean {
    return this.active;
  }

  /** A keystroke. */
  keystroke(): void {
    const now = Date.now();
    if (!this.active) {
      if (!this.send(true)) return;
      this.active = true;
      this.startedAt = now;
    } else if (this.refreshMs > 0 && now - this.startedAt >= this.refreshMs) {
      this.send(true);
      this.startedAt = now;
    }
    this.clearTimer();
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.stop();
    }, this.idleMs);
  }

  /** Sends `stop` now if typing (e.g. the message was sent). */
  stop(): void {
    this.clearTimer();
    if (!this.active) return;
    this.active = false;
    this.send(false);
  }

  /** Forgets the state without sending anything (the server already stopped it). */
  reset(): void {
    this.clearTimer();
    this.active = false;
  }

  private clearTimer(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
  }
}
