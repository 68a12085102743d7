/** A value that changes over time: read it with `get`, watch it with `subscribe`. */
export interface Observable<T> {
  /** The current value. */
  get(): T;
  /** Calls `listener` after each change; returns the function that stops it. */
  subscribe(listener: (value: T) => void): () => void;
}

/**
 * A minimal observable value. `get` and `subscribe` are bound, so they can be handed to
 * React's `useSyncExternalStore` as they are.
 */
export class Store<T> implements Observable<T> {
  private value: T;
  private readonly listeners = new Set<(value: T) => void>();

  constructor(initial: T) {
    this.value = initial;
  }

  readonly get = (): T => this.value;

  readonly subscribe = (listener: (value: T) => void): (() => void) => {
    // A wrapper per call: the same function subscribed twice is two subscriptions.
    const entry = (value: T) => listener(value);
    this.listeners.add(entry);
    return () => {
      this.listeners.delete(entry);
    };
  };

  set(value: T): void {
    if (Object.is(value, this.value)) return;
    this.value = value;
    for (const listener of Array.from(this.listeners)) listener(value);
  }
}
