// The promise methods, typed errors and events against a real `switchboard serve`.
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';

import {
  isSwitchboardError,
  SwitchboardError,
  type ChatMessage,
  type ErrorCode,
  type PresenceEvent,
  type SignalEvent,
  type TypingEvent,
} from '../src/index.js';
import { Clients } from './helpers/clients.js';
import { startServer, type Server } from './helpers/server.js';
import { token } from './helpers/tokens.js';
import { record, roomName, sleep, waitFor } from './helpers/wait.js';

let server: Server;
let limited: Server;
const clients = new Clients(() => server.url);
const limitedClients = new Clients(() => limited.url);

beforeAll(async () => {
  [server, limited] = await Promise.all([
    startServer(),
    startServer({ args: ['--rate-limit', '1', '--rate-burst', '2'] }),
  ]);
});
afterEach(() => {
  clients.closeAll();
  limitedClients.closeAll();
});
afterAll(async () => {
  await Promise.all([server?.stop(), limited?.stop()]);
});

/** Asserts that `promise` rejects with a SwitchboardError of `code`; returns it. */
async function rejectsWith(promise: Promise<unknown>, code: ErrorCode): Promise<SwitchboardError> {
  let caught: unknown;
  try {
    await promise;
  } catch (e) {
    caught = e;
  }
  expect(caught, `expected a rejection with ${code}`).toBeDefined();
  expect(caught).toBeInstanceOf(SwitchboardError);
  expect(caught).toBeInstanceOf(Error);
  const err = caught as SwitchboardError;
  expect(err.code).toBe(code);
  expect(err.name).toBe('SwitchboardError');
  expect(typeof err.message).toBe('string');
  expect(err.message.length).toBeGreaterThan(0);
  expect(err.stack).toContain('SwitchboardError');
  // Not `{}`: the code and message survive JSON.
  expect(JSON.parse(JSON.stringify(err))).toEqual({ name: 'SwitchboardError', code, message: err.message });
  expect(isSwitchboardError(err)).toBe(true);
  return err;
}

describe('connection', () => {
  it('goes connecting → connected, observable with get/subscribe', async () => {
    const alice = clients.make('alice');
    expect(alice.state.get()).toBe('connecting');
    expect(alice.status).toBe('connecting');
    const seen = record(alice.state);
    await waitFor(() => alice.state.get() === 'connected', 'connected');
    expect(seen).toEqual(['connected']);
    expect(alice.error.get()).toBeNull();

    const unsubscribe = alice.state.subscribe(() => {});
    unsubscribe();
    alice.disconnect();
    expect(alice.state.get()).toBe('disconnected');
    expect(alice.error.get()).toBeNull();
    alice.connect();
    await waitFor(() => alice.state.get() === 'connected', 'connected again');
    expect(seen).toEqual(['connected', 'disconnected', 'connecting', 'connected']);
  });

  it.each([
    ['a token signed with another secret', token('alice', { secret: 'wrong' }), 'Invalid token'],
    ['an expired token', token('alice', { ttl: -3600 }), 'Token expired'],
    ['no token', undefined, 'Authentication required'],
  ])('refuses %s with UNAUTHORIZED and stops', async (_what, tok, message) => {
    const client = clients.make('alice', tok === undefined ? { getToken: () => undefined as unknown as string } : { token: tok });
    await waitFor(() => client.state.get() === 'disconnected', 'disconnected');
    const err = client.error.get();
    expect(err).toBeInstanceOf(SwitchboardError);
    expect(err!.code).toBe('UNAUTHORIZED');
    expect(err!.message).toBe(message);
    expect(client.socket.active).toBe(false);
  });

  it('reports a failing getToken as UNAUTHORIZED', async () => {
    const client = clients.make('alice', { getToken: () => Promise.reject(new Error('refresh endpoint down')) });
    await waitFor(() => client.state.get() === 'disconnected', 'disconnected');
    expect(client.error.get()?.code).toBe('UNAUTHORIZED');
    expect(client.error.get()?.message).toBe('getToken failed: refresh endpoint down');
  });

  it('waits for an async getToken', async () => {
    const getToken = vi.fn(async () => {
      await sleep(20);
      return token('alice');
    });
    const client = await clients.connected('alice', { getToken });
    expect(getToken).toHaveBeenCalledTimes(1);
    await client.joinRoom(roomName('async-token'));
  });

  it('reports an unreachable server as CONNECT_ERROR while it keeps trying', async () => {
    const client = clients.make('alice');
    client.close();
    const { connect } = await import('../src/index.js');
    const lost = connect('http://127.0.0.1:1', { token: token('alice'), socketOptions: { reconnectionDelay: 50, reconnectionDelayMax: 50 } });
    try {
      await waitFor(() => lost.error.get(), 'a connect error');
      expect(lost.error.get()!.code).toBe('CONNECT_ERROR');
      expect(lost.state.get()).toBe('connecting');
      expect(lost.socket.active).toBe(true);
    } finally {
      lost.close();
    }
    expect(lost.state.get()).toBe('disconnected');
  });
});

describe('rooms and messages', () => {
  it('joinRoom, roomMembers, userJoined with the payload only, members observable', async () => {
    const room = roomName('lobby');
    const alice = await clients.connected('alice');
    const bob = await clients.connected('bob');

    const roomMembers = vi.fn();
    alice.on('roomMembers', roomMembers);
    await expect(alice.joinRoom(room)).resolves.toBeUndefined();
    expect(roomMembers).toHaveBeenCalledTimes(1);
    expect(roomMembers.mock.calls[0]).toEqual([{ roomId: room, members: [{ userId: 'alice', username: 'Alice' }] }]);
    expect(alice.members(room)).toEqual([{ userId: 'alice', username: 'Alice' }]);
    expect(alice.rooms).toEqual([room]);

    const joined = vi.fn<(e: PresenceEvent) => void>();
    alice.on('userJoined', joined);
    const memberChanges = record(alice.room(room));
    await bob.joinRoom(room);
    await waitFor(() => joined.mock.calls.length === 1, 'userJoined');
    // Room broadcasts carry a trailing recovery offset: the handler gets the payload alone.
    expect(joined.mock.calls[0]).toEqual([{ roomId: room, userId: 'bob', username: 'Bob' }]);
    expect(alice.members(room)).toEqual([
      { userId: 'alice', username: 'Alice' },
      { userId: 'bob', username: 'Bob' },
    ]);
    expect(memberChanges.at(-1)!.members).toHaveLength(2);
    expect(bob.members(room)).toHaveLength(2);

    // Joining twice is a no-op success.
    await expect(alice.joinRoom(room)).resolves.toBeUndefined();
  });

  it('sendMessage resolves {id, timestamp} and everyone gets the message event', async () => {
    const room = roomName('send');
    const alice = await clients.connected('alice');
    const bob = await clients.connected('bob');
    await alice.joinRoom(room);
    await bob.joinRoom(room);
    const atAlice = vi.fn<(m: ChatMessage) => void>();
    const atBob = vi.fn<(m: ChatMessage) => void>();
    alice.on('message', atAlice);
    bob.on('message', atBob);

    const result = await alice.sendMessage(room, 'hello');
    expect(Object.keys(result).sort()).toEqual(['id', 'timestamp']);
    expect(typeof result.id).toBe('string');
    expect(new Date(result.timestamp).toISOString()).toBe(result.timestamp);

    await waitFor(() => atBob.mock.calls.length === 1 && atAlice.mock.calls.length === 1, 'both messages');
    const expected = { id: result.id, roomId: room, text: 'hello', userId: 'alice', username: 'Alice', timestamp: result.timestamp };
    expect(atBob.mock.calls[0]).toEqual([expected]);
    expect(atAlice.mock.calls[0]).toEqual([expected]);
  });

  it('getHistory: oldest first, limit and before', async () => {
    const room = roomName('history');
    const alice = await clients.connected('alice');
    await alice.joinRoom(room);
    const ids: string[] = [];
    for (const text of ['one', 'two', 'three']) ids.push((await alice.sendMessage(room, text)).id);

    const all = await alice.getHistory(room);
    expect(all.messages.map((m) => m.text)).toEqual(['one', 'two', 'three']);
    expect(all.messages.map((m) => m.id)).toEqual(ids);
    expect(all.messages[0]).toMatchObject({ roomId: room, userId: 'alice', username: 'Alice' });

    const last = await alice.getHistory(room, { limit: 2 });
    expect(last.messages.map((m) => m.text)).toEqual(['two', 'three']);
    const before = await alice.getHistory(room, { before: ids[2], limit: 1 });
    expect(before.messages.map((m) => m.text)).toEqual(['two']);
  });

  it('leaveRoom: userLeft to the others, members updated, room forgotten', async () => {
    const room = roomName('leave');
    const alice = await clients.connected('alice');
    const bob = await clients.connected('bob');
    await alice.joinRoom(room);
    await bob.joinRoom(room);
    await waitFor(() => alice.members(room).length === 2, 'two members');
    const left = vi.fn<(e: PresenceEvent) => void>();
    alice.on('userLeft', left);

    await expect(bob.leaveRoom(room)).resolves.toBeUndefined();
    expect(bob.rooms).toEqual([]);
    expect(bob.members(room)).toEqual([]);
    await waitFor(() => left.mock.calls.length === 1, 'userLeft');
    expect(left.mock.calls[0]).toEqual([{ roomId: room, userId: 'bob', username: 'Bob' }]);
    expect(alice.members(room)).toEqual([{ userId: 'alice', username: 'Alice' }]);
  });

  it('signal relays data to the other user; NOT_REACHABLE without a shared room', async () => {
    const room = roomName('signal');
    const alice = await clients.connected('alice');
    const bob = await clients.connected('bob');
    await alice.joinRoom(room);
    await bob.joinRoom(room);
    const signals = vi.fn<(e: SignalEvent) => void>();
    bob.on('signal', signals);

    const offer = { type: 'offer', sdp: 'v=0…' };
    await expect(alice.signal('bob', offer)).resolves.toBeUndefined();
    await waitFor(() => signals.mock.calls.length === 1, 'signal');
    expect(signals.mock.calls[0]).toEqual([{ fromUserId: 'alice', fromUsername: 'Alice', data: offer }]);

    const err = await rejectsWith(alice.signal('carol', offer), 'NOT_REACHABLE');
    expect(err.message).toBe('carol is not reachable');
  });
});

describe('typed errors', () => {
  it('ACCESS_DENIED: outside the token rooms claim, and another user’s personal room', async () => {
    const alice = await clients.connected('alice', { tokenOptions: { rooms: ['team-*'] } });
    await alice.joinRoom(roomName('team-a'));
    const err = await rejectsWith(alice.joinRoom('lobby'), 'ACCESS_DENIED');
    expect(err.message).toBe('You may not join lobby');
    await rejectsWith(alice.joinRoom('user:bob'), 'ACCESS_DENIED');
    expect(alice.rooms).not.toContain('lobby');
  });

  it('INVALID_ROOM, NOT_IN_ROOM, INVALID_MESSAGE', async () => {
    const alice = await clients.connected('alice');
    const room = roomName('errors');
    await rejectsWith(alice.joinRoom(''), 'INVALID_ROOM');
    await rejectsWith(alice.joinRoom('x'.repeat(129)), 'INVALID_ROOM');
    const notIn = await rejectsWith(alice.sendMessage(room, 'hi'), 'NOT_IN_ROOM');
    expect(notIn.message).toBe(`You are not in ${room}`);
    await rejectsWith(alice.getHistory(room), 'NOT_IN_ROOM');
    await rejectsWith(alice.leaveRoom(room), 'NOT_IN_ROOM');

    await alice.joinRoom(room);
    await rejectsWith(alice.sendMessage(room, ''), 'INVALID_MESSAGE');
    await rejectsWith(alice.sendMessage(room, 'x'.repeat(4001)), 'INVALID_MESSAGE');
    await rejectsWith(alice.getHistory(room, { limit: 0 }), 'INVALID_MESSAGE');
    await rejectsWith(alice.signal('', null), 'INVALID_MESSAGE');
  });

  it('RATE_LIMITED', async () => {
    const alice = await limitedClients.connected('alice');
    const room = roomName('limited');
    await alice.joinRoom(room); // 1 of the burst of 2
    await alice.sendMessage(room, 'one');
    await rejectsWith(alice.sendMessage(room, 'two'), 'RATE_LIMITED');
  });

  it('TIMEOUT when no answer comes, CLOSED after close()', async () => {
    const alice = await clients.connected('alice', { ackTimeout: 150 });
    alice.disconnect();
    await rejectsWith(alice.joinRoom(roomName('nowhere')), 'TIMEOUT');
    alice.close();
    await rejectsWith(alice.joinRoom(roomName('nowhere')), 'CLOSED');
    expect(() => alice.connect()).toThrow(SwitchboardError);
  });

  it('a failure without a callback arrives as a typed error event', async () => {
    const alice = await clients.connected('alice');
    const errors = vi.fn();
    alice.on('error', errors);
    alice.socket.emit('startTyping', 'not-joined'); // raw, without an ack
    await waitFor(() => errors.mock.calls.length === 1, 'error event');
    const [err] = errors.mock.calls[0]!;
    expect(err).toBeInstanceOf(SwitchboardError);
    expect(err).toMatchObject({ code: 'NOT_IN_ROOM', message: 'You are not in not-joined' });
  });
});

describe('listeners', () => {
  it('each registration is removed by its own unsubscribe, never another one', async () => {
    const room = roomName('listeners');
    const alice = await clients.connected('alice');
    await alice.joinRoom(room);
    const before = alice.socket.listeners('message').length;
    const first = vi.fn();
    const second = vi.fn();
    const offFirst = alice.on('message', first);
    alice.on('message', second);
    const offSame = alice.on('message', second); // the same function twice: two registrations
    expect(alice.socket.listeners('message').length).toBe(before + 3);

    offFirst();
    offFirst(); // idempotent
    offSame();
    expect(alice.socket.listeners('message').length).toBe(before + 1);
    await alice.sendMessage(room, 'still listening');
    await waitFor(() => second.mock.calls.length === 1, 'the remaining listener');
    expect(first).not.toHaveBeenCalled();

    alice.off('message', second);
    expect(alice.socket.listeners('message').length).toBe(before);
    alice.off('message', second); // nothing left to remove: no effect on others
    expect(alice.socket.listeners('message').length).toBe(before);
  });

  it('once() fires one time', async () => {
    const room = roomName('once');
    const alice = await clients.connected('alice');
    await alice.joinRoom(room);
    const handler = vi.fn();
    alice.once('message', handler);
    await alice.sendMessage(room, 'a');
    await alice.sendMessage(room, 'b');
    await waitFor(() => handler.mock.calls.length === 1, 'one call');
    await sleep(50);
    expect(handler).toHaveBeenCalledTimes(1);
    expect(handler.mock.calls[0]![0]).toMatchObject({ text: 'a' });
  });
});

describe('typing helper with the server', () => {
  it('startTyping once, stopTyping after 2 s of silence; typingUsers observable', async () => {
    const room = roomName('typing');
    const alice = await clients.connected('alice');
    const bob = await clients.connected('bob');
    await alice.joinRoom(room);
    await bob.joinRoom(room);
    const events: Array<TypingEvent & { at: number }> = [];
    bob.on('typing', (e) => events.push({ ...e, at: Date.now() }));
    const emit = vi.spyOn(alice.socket, 'emit');

    alice.typing(room);
    await sleep(300);
    alice.typing(room);
    await sleep(300);
    const lastKeystroke = Date.now();
    alice.typing(room);
    expect(alice.isTyping(room)).toBe(true);
    await waitFor(() => bob.typingUsers(room).length === 1, 'bob sees alice typing');
    expect(bob.typingUsers(room)).toEqual([{ userId: 'alice', username: 'Alice' }]);

    await waitFor(() => events.length === 2, 'typing stopped', 4000);
    expect(events.map((e) => e.isTyping)).toEqual([true, false]);
    expect(events[1]).toMatchObject({ roomId: room, userId: 'alice', username: 'Alice', isTyping: false });
    const silence = events[1]!.at - lastKeystroke;
    expect(silence).toBeGreaterThanOrEqual(1900);
    expect(silence).toBeLessThan(3000);
    expect(emit.mock.calls.filter(([e]) => e === 'startTyping')).toHaveLength(1);
    expect(emit.mock.calls.filter(([e]) => e === 'stopTyping')).toHaveLength(1);
    expect(bob.typingUsers(room)).toEqual([]);
    expect(alice.isTyping(room)).toBe(false);
  });

  it('sending a message stops typing at once', async () => {
    const room = roomName('typing-send');
    const alice = await clients.connected('alice');
    const bob = await clients.connected('bob');
    await alice.joinRoom(room);
    await bob.joinRoom(room);
    const events: TypingEvent[] = [];
    bob.on('typing', (e) => events.push(e));
    alice.typing(room);
    await waitFor(() => events.length === 1, 'typing started');
    await alice.sendMessage(room, 'done');
    await waitFor(() => events.length === 2, 'typing stopped');
    expect(events.map((e) => e.isTyping)).toEqual([true, false]);
  });
});
