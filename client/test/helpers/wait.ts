import type { Observable } from '../../src/index.js';

/** Resolves when `check()` is truthy (polled), or rejects after `timeoutMs` saying `what`. */
export async function waitFor<T>(check: () => T | undefined | null | false, what: string, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Records every value an observable takes from now on. */
export function record<T>(observable: Observable<T>): T[] {
  const seen: T[] = [];
  observable.subscribe((v) => seen.push(v));
  return seen;
}

/** Unique room names per test run. */
let n = 0;
export const roomName = (base: string) => `${base}-${process.pid}-${++n}`;
