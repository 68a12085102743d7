// The typing helper's timing with fake timers: no server involved.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { connect, TypingIndicator, type SwitchboardClient } from '../src/index.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('TypingIndicator', () => {
  const make = (options?: ConstructorParameters<typeof TypingIndicator>[1]) => {
    const sent: boolean[] = [];
    const indicator = new TypingIndicator((isTyping) => {
      sent.push(isTyping);
      return true;
    }, options);
    return { sent, indicator };
  };

  it('sends start once per burst and stop after 2 s of silence', () => {
    const { sent, indicator } = make();
    indicator.keystroke();
    expect(sent).toEqual([true]);
    expect(indicator.isTyping).toBe(true);
    vi.advanceTimersByTime(500);
    indicator.keystroke();
    vi.advanceTimersByTime(1000);
    indicator.keystroke();
    expect(sent).toEqual([true]);

    vi.advanceTimersByTime(1999); // 1999 ms after the last keystroke
    expect(sent).toEqual([true]);
    vi.advanceTimersByTime(1);
    expect(sent).toEqual([true, false]);
    expect(indicator.isTyping).toBe(false);

    vi.advanceTimersByTime(10_000);
    expect(sent).toEqual([true, false]);
    indicator.keystroke(); // a new burst
    expect(sent).toEqual([true, false, true]);
  });

  it('stop() sends stop at once, only when typing; reset() sends nothing', () => {
    const { sent, indicator } = make();
    indicator.stop();
    expect(sent).toEqual([]);
    indicator.keystroke();
    indicator.stop();
    expect(sent).toEqual([true, false]);
    vi.advanceTimersByTime(5000);
    expect(sent).toEqual([true, false]);

    indicator.keystroke();
    indicator.reset();
    vi.advanceTimersByTime(5000);
    expect(sent).toEqual([true, false, true]);
    expect(indicator.isTyping).toBe(false);
  });

  it('refreshes start every 3 s of continuous typing (the server auto-stops after 5 s)', () => {
    const { sent, indicator } = make();
    for (let t = 0; t <= 7000; t += 250) {
      indicator.keystroke();
      vi.advanceTimersByTime(250);
    }
    // start at 0, again at 3000 and 6000; no stop in between
    expect(sent).toEqual([true, true, true]);
    vi.advanceTimersByTime(2000);
    expect(sent).toEqual([true, true, true, false]);
  });

  it('takes custom timings; refreshMs 0 never refreshes', () => {
    const { sent, indicator } = make({ idleMs: 500, refreshMs: 0 });
    for (let i = 0; i < 40; i++) {
      indicator.keystroke();
      vi.advanceTimersByTime(400);
    }
    expect(sent).toEqual([true]);
    vi.advanceTimersByTime(100);
    expect(sent).toEqual([true, false]);
  });

  it('stays idle when it could not send (offline)', () => {
    let online = false;
    const sent: boolean[] = [];
    const indicator = new TypingIndicator((isTyping) => {
      if (!online) return false;
      sent.push(isTyping);
      return true;
    });
    indicator.keystroke();
    expect(indicator.isTyping).toBe(false);
    vi.advanceTimersByTime(3000);
    expect(sent).toEqual([]);
    online = true;
    indicator.keystroke();
    expect(sent).toEqual([true]);
  });
});

describe('client.typing(roomId)', () => {
  let client: SwitchboardClient;
  let emitted: unknown[][];

  beforeEach(() => {
    // Never connects: the socket's emit is replaced and `connected` forced.
    client = connect('http://127.0.0.1:1', { token: 't', autoConnect: false });
    emitted = [];
    Object.defineProperty(client.socket, 'connected', { value: true, configurable: true });
    vi.spyOn(client.socket, 'emit').mockImplementation((...args: unknown[]) => {
      emitted.push(args.filter((a) => typeof a !== 'function'));
      return client.socket;
    });
  });
  afterEach(() => {
    Object.defineProperty(client.socket, 'connected', { value: false, configurable: true });
    client.close();
  });

  const typingEmits = () => emitted.filter(([e]) => e === 'startTyping' || e === 'stopTyping');

  it('keeps one indicator per room', () => {
    client.typing('a');
    vi.advanceTimersByTime(1000);
    client.typing('b');
    client.typing('a');
    expect(typingEmits()).toEqual([
      ['startTyping', 'a'],
      ['startTyping', 'b'],
    ]);
    vi.advanceTimersByTime(2000); // a: 2 s after its last keystroke; b: 2 s after its only one
    expect(typingEmits()).toEqual([
      ['startTyping', 'a'],
      ['startTyping', 'b'],
      ['stopTyping', 'b'],
      ['stopTyping', 'a'],
    ]);
    expect(client.isTyping('a')).toBe(false);
  });

  it('sendMessage and stopTyping stop at once', () => {
    client.typing('a');
    client.sendMessage('a', 'hi').catch(() => undefined);
    expect(typingEmits()).toEqual([
      ['startTyping', 'a'],
      ['stopTyping', 'a'],
    ]);
    expect(emitted.at(-1)).toEqual(['sendMessage', { roomId: 'a', text: 'hi' }]);
    client.typing('a');
    client.stopTyping('a');
    vi.advanceTimersByTime(5000);
    expect(typingEmits()).toHaveLength(4);
  });

  it('sends nothing while offline, and forgets its state on disconnect', () => {
    client.typing('a');
    Object.defineProperty(client.socket, 'connected', { value: false, configurable: true });
    client.disconnect(); // the server stops typing on disconnect by itself
    vi.advanceTimersByTime(5000);
    client.typing('a');
    vi.advanceTimersByTime(5000);
    expect(typingEmits()).toEqual([['startTyping', 'a']]);
  });
});
