// Dropped transports: recovery, rejoin when the session was not recovered, getToken on reconnect.
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';

import type { ChatMessage, PresenceEvent, SwitchboardClient } from '../src/index.js';
import { Clients } from './helpers/clients.js';
import { startServer, type Server } from './helpers/server.js';
import { token } from './helpers/tokens.js';
import { record, roomName, waitFor } from './helpers/wait.js';

/** Drops the transport the way a network failure would; socket.io-client reconnects. */
function dropTransport(client: SwitchboardClient): void {
  client.socket.io.engine.close();
}

const joinEmits = (spy: { mock: { calls: unknown[][] } }) => spy.mock.calls.filter(([e]) => e === 'joinRoom');

describe('with recovery (the default 2 min window)', () => {
  let server: Server;
  const clients = new Clients(() => server.url);
  beforeAll(async () => {
    server = await startServer();
  });
  afterEach(() => clients.closeAll());
  afterAll(() => server?.stop());

  it('a dropped transport comes back recovered: rooms kept, missed messages delivered, no rejoin, getToken asked again', async () => {
    const room = roomName('recover');
    const getToken = vi.fn(() => token('alice', { username: 'Alice' }));
    const alice = await clients.connected('alice', { getToken });
    const bob = await clients.connected('bob');
    await alice.joinRoom(room);
    await bob.joinRoom(room);
    await waitFor(() => alice.members(room).length === 2, 'two members');
    const states = record(alice.state);
    const messages: ChatMessage[] = [];
    alice.on('message', (m) => messages.push(m));
    const left = vi.fn<(e: PresenceEvent) => void>();
    bob.on('userLeft', left);
    const emit = vi.spyOn(alice.socket, 'emit');
    const rejoined = vi.fn();
    alice.on('rejoined', rejoined);

    dropTransport(alice);
    expect(alice.state.get()).toBe('reconnecting');
    const sent = await bob.sendMessage(room, 'while you were away');
    await waitFor(() => alice.state.get() === 'recovered', 'recovered');

    expect(alice.socket.recovered).toBe(true);
    expect(states).toEqual(['reconnecting', 'recovered']);
    await waitFor(() => messages.length === 1, 'the missed message');
    expect(messages[0]).toMatchObject({ id: sent.id, text: 'while you were away', userId: 'bob' });
    expect(joinEmits(emit)).toEqual([]);
    expect(rejoined).not.toHaveBeenCalled();
    expect(getToken).toHaveBeenCalledTimes(2);
    expect(alice.rooms).toEqual([room]);
    expect(alice.members(room)).toHaveLength(2);
    // Still in the room on the server: a new message arrives, and presence never changed.
    await bob.sendMessage(room, 'welcome back');
    await waitFor(() => messages.length === 2, 'a new message');
    expect(left).not.toHaveBeenCalled();
    await alice.sendMessage(room, 'thanks');
  });

  it('joinRoom and getHistory cut by a drop are sent again after the reconnect; sendMessage is not', async () => {
    const room = roomName('cut');
    const alice = await clients.connected('alice');
    const emit = vi.spyOn(alice.socket, 'emit');
    const joining = alice.joinRoom(room);
    dropTransport(alice); // the answer to joinRoom is lost with the transport
    await expect(joining).resolves.toBeUndefined();
    expect(joinEmits(emit)).toHaveLength(2);
    expect(alice.rooms).toEqual([room]);

    await waitFor(() => alice.connected, 'connected');
    await alice.sendMessage(room, 'kept');
    const history = alice.getHistory(room);
    dropTransport(alice);
    await expect(history).resolves.toMatchObject({ messages: [{ text: 'kept' }] });
    expect(emit.mock.calls.filter(([e]) => e === 'getHistory')).toHaveLength(2);

    await waitFor(() => alice.connected, 'connected');
    const sending = alice.sendMessage(room, 'maybe');
    dropTransport(alice);
    await expect(sending).rejects.toMatchObject({ code: 'DISCONNECTED' });
  });
});

describe('without recovery (--recovery-window 0)', () => {
  let server: Server;
  const clients = new Clients(() => server.url);
  beforeAll(async () => {
    server = await startServer({ args: ['--recovery-window', '0', '--presence-grace', '0'] });
  });
  afterEach(() => clients.closeAll());
  afterAll(() => server?.stop());

  it('rejoins every room after the reconnect, with a fresh token from getToken', async () => {
    const rooms = [roomName('rejoin-a'), roomName('rejoin-b')];
    let calls = 0;
    // The second token carries another username: the server must see it after the reconnect.
    const getToken = vi.fn(() => token('alice', { username: ++calls === 1 ? 'Alice' : 'Alice (refreshed)' }));
    const alice = await clients.connected('alice', { getToken });
    const bob = await clients.connected('bob');
    for (const r of rooms) {
      await alice.joinRoom(r);
      await bob.joinRoom(r);
    }
    const states = record(alice.state);
    const emit = vi.spyOn(alice.socket, 'emit');
    const rejoined: string[] = [];
    alice.on('rejoined', (e) => rejoined.push(e.roomId));
    const atBob: ChatMessage[] = [];
    bob.on('message', (m) => atBob.push(m));
    const joinedAgain = vi.fn<(e: PresenceEvent) => void>();
    bob.on('userJoined', joinedAgain);

    dropTransport(alice);
    await waitFor(() => rejoined.length === 2, 'both rooms rejoined');
    expect(rejoined.sort()).toEqual([...rooms].sort());
    expect(alice.socket.recovered).not.toBe(true);
    expect(states).toEqual(['reconnecting', 'connected']);
    expect(joinEmits(emit).map(([, r]) => r).sort()).toEqual([...rooms].sort());
    expect(getToken).toHaveBeenCalledTimes(2);
    expect(alice.rooms.sort()).toEqual([...rooms].sort());

    // The server knows alice again, under the refreshed token's name.
    await waitFor(() => joinedAgain.mock.calls.length === 2, 'userJoined for both rooms');
    expect(joinedAgain.mock.calls[0]![0]).toMatchObject({ userId: 'alice', username: 'Alice (refreshed)' });
    await waitFor(() => alice.members(rooms[0]!).length === 2, 'roomMembers after the rejoin');
    await alice.sendMessage(rooms[0]!, 'back');
    await waitFor(() => atBob.length === 1, 'the message after the rejoin');
    expect(atBob[0]).toMatchObject({ text: 'back', username: 'Alice (refreshed)' });
  });

  it('does not rejoin a room left before the drop', async () => {
    const room = roomName('left');
    const alice = await clients.connected('alice');
    await alice.joinRoom(room);
    await alice.leaveRoom(room);
    const emit = vi.spyOn(alice.socket, 'emit');
    dropTransport(alice);
    await waitFor(() => alice.state.get() === 'connected', 'connected again');
    expect(joinEmits(emit)).toEqual([]);
    expect(alice.rooms).toEqual([]);
  });
});

describe('a server restart on the same port', () => {
  let server: Server | undefined;
  const clients = new Clients(() => server!.url);
  afterEach(async () => {
    clients.closeAll();
    await server?.stop();
    server = undefined;
  });

  it('reconnects, not recovered, and joins the rooms again', async () => {
    server = await startServer();
    const port = server.port;
    const room = roomName('restart');
    const alice = await clients.connected('alice');
    await alice.joinRoom(room);
    await alice.sendMessage(room, 'before');
    const states = record(alice.state);
    const rejoined = vi.fn();
    alice.on('rejoined', rejoined);

    await server.stop();
    await waitFor(() => alice.state.get() === 'reconnecting', 'reconnecting');
    server = await startServer({ port });
    await waitFor(() => rejoined.mock.calls.length === 1, 'rejoined', 10_000);
    expect(rejoined.mock.calls[0]).toEqual([{ roomId: room }]);
    expect(states[0]).toBe('reconnecting');
    expect(states.at(-1)).toBe('connected');
    expect(states).not.toContain('recovered');
    expect(alice.members(room)).toEqual([{ userId: 'alice', username: 'Alice' }]);
    await expect(alice.sendMessage(room, 'after')).resolves.toMatchObject({ id: expect.any(String) });
  });

  it('reports a room it may no longer join with rejoinFailed and forgets it', async () => {
    server = await startServer();
    const port = server.port;
    const open = roomName('open');
    const alice = await clients.connected('alice', { tokenOptions: {} }); // no rooms claim
    await alice.joinRoom(open);
    const failed = vi.fn();
    alice.on('rejoinFailed', failed);

    await server.stop();
    await waitFor(() => alice.state.get() === 'reconnecting', 'reconnecting');
    // Now rooms need a claim, which alice's token does not have.
    server = await startServer({ port, args: ['--room-policy', 'claims'] });
    await waitFor(() => failed.mock.calls.length === 1, 'rejoinFailed', 10_000);
    const [{ roomId, error }] = failed.mock.calls[0]!;
    expect(roomId).toBe(open);
    expect(error.code).toBe('ACCESS_DENIED');
    expect(alice.rooms).toEqual([]);
    expect(alice.state.get()).toBe('connected');
  });
});
