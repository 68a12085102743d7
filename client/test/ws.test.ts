// `@switchboard/client/ws` against a real server: the typed API over `/ws`, alongside a
// Socket.IO client of the same room, resume after a dropped connection, rejoin when the
// session could not be resumed, refusals.
import { createRequire } from 'node:module';

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import type { ChatMessage } from '../src/index.js';
import { connect, SwitchboardError, type WebSocketConstructor, type WsConnectOptions, type WsSwitchboardClient } from '../src/ws/index.js';
import { Clients } from './helpers/clients.js';
import { startServer, type Server } from './helpers/server.js';
import { token } from './helpers/tokens.js';
import { record, roomName, sleep, waitFor } from './helpers/wait.js';

// Node 20 has no global WebSocket: the `ws` package's, as a Node app passes it.
const WebSocket = createRequire(import.meta.url)('ws') as WebSocketConstructor;

class WsClients {
  private readonly all: WsSwitchboardClient[] = [];
  constructor(private readonly url: () => string) {}
  make(sub: string, options: WsConnectOptions = {}): WsSwitchboardClient {
    const client = connect(this.url(), {
      WebSocket,
      token: token(sub, { username: sub[0]!.toUpperCase() + sub.slice(1) }),
      reconnectionDelay: 50,
      reconnectionDelayMax: 200,
      ...options,
    });
    this.all.push(client);
    return client;
  }
  async connected(sub: string, options: WsConnectOptions = {}): Promise<WsSwitchboardClient> {
    const client = this.make(sub, options);
    await waitFor(() => client.connected, `${sub} to connect over /ws`);
    return client;
  }
  closeAll(): void {
    for (const c of this.all.splice(0)) c.close();
  }
}

/** Drops the connection the way a network failure would (no close frame). */
function drop(client: WsSwitchboardClient): void {
  (client as unknown as { socket: { terminate(): void } }).socket.terminate();
}

describe('@switchboard/client/ws', () => {
  let server: Server;
  const ws = new WsClients(() => server.url);
  const sio = new Clients(() => server.url);
  beforeAll(async () => {
    server = await startServer({ args: ['--presence-grace', '100'] });
  });
  afterEach(() => {
    ws.closeAll();
    sio.closeAll();
  });
  afterAll(() => server?.stop());

  it('speaks the typed API with a Socket.IO member of the same room', async () => {
    const room = roomName('ws-typed');
    const alice = await ws.connected('alice');
    const bob = await sio.connected('bob');
    await alice.joinRoom(room);
    await bob.joinRoom(room);
    await waitFor(() => alice.members(room).length === 2, 'bob in alice\'s members');
    expect(alice.rooms).toEqual([room]);
    const got: ChatMessage[] = [];
    alice.on('message', (m) => got.push(m));
    const sent = await alice.sendMessage(room, 'hi from ws');
    expect(Object.keys(sent).sort()).toEqual(['id', 'timestamp']);
    await bob.sendMessage(room, 'hi from sio');
    await waitFor(() => got.length === 2, 'both messages');
    expect(got.map((m) => [m.userId, m.text])).toEqual([['alice', 'hi from ws'], ['bob', 'hi from sio']]);
    alice.typing(room);
    await waitFor(() => bob.typingUsers(room).some((u) => u.userId === 'alice'), 'alice typing at bob');
    expect((await alice.getHistory(room)).messages.map((m) => m.text)).toEqual(['hi from ws', 'hi from sio']);
    const denied = await alice.sendMessage('elsewhere', 'x').catch((e: unknown) => e);
    expect(denied).toBeInstanceOf(SwitchboardError);
    expect((denied as SwitchboardError).code).toBe('NOT_IN_ROOM');
    await alice.leaveRoom(room);
    await waitFor(() => bob.members(room).length === 1, 'alice gone from bob\'s members');
  });

  it('resumes by itself after a dropped connection: missed messages once, in order, no rejoin', async () => {
    const room = roomName('ws-resume');
    const alice = await ws.connected('alice');
    const bob = await sio.connected('bob');
    await alice.joinRoom(room);
    await bob.joinRoom(room);
    const got: string[] = [];
    alice.on('message', (m) => got.push(m.text));
    const rejoined: string[] = [];
    alice.on('rejoined', (e) => rejoined.push(e.roomId));
    await bob.sendMessage(room, 'before');
    await waitFor(() => got.length === 1, 'before');
    const states = record(alice.state);
    const session = alice.sessionId;
    drop(alice);
    await waitFor(() => states.includes('reconnecting'), 'reconnecting');
    for (let i = 0; i < 3; i++) await bob.sendMessage(room, `missed ${i}`);
    await waitFor(() => alice.status === 'recovered', 'recovered');
    await bob.sendMessage(room, 'after');
    await waitFor(() => got.includes('after'), 'after');
    await sleep(200);
    expect(got).toEqual(['before', 'missed 0', 'missed 1', 'missed 2', 'after']);
    expect(alice.sessionId).toBe(session);
    expect(rejoined).toEqual([]);
  });

  it('a refused token ends in disconnected with UNAUTHORIZED, without retrying', async () => {
    const c = ws.make('mallory', { token: 'not-a-jwt' });
    await waitFor(() => c.status === 'disconnected', 'disconnected');
    expect(c.error.get()?.code).toBe('UNAUTHORIZED');
    expect(c.error.get()?.message).toBe('Invalid token');
  });
});

describe('@switchboard/client/ws without recovery', () => {
  let server: Server;
  const ws = new WsClients(() => server.url);
  beforeAll(async () => {
    server = await startServer({ args: ['--recovery-window', '0'] });
  });
  afterEach(() => ws.closeAll());
  afterAll(() => server?.stop());

  it('joins its rooms again after a reconnect that could not resume', async () => {
    const room = roomName('ws-rejoin');
    const alice = await ws.connected('alice');
    await alice.joinRoom(room);
    const rejoined: string[] = [];
    alice.on('rejoined', (e) => rejoined.push(e.roomId));
    const states = record(alice.state);
    drop(alice);
    await waitFor(() => rejoined.length === 1, 'rejoined');
    expect(rejoined).toEqual([room]);
    expect(states).toContain('reconnecting');
    expect(alice.status).toBe('connected');
    await alice.sendMessage(room, 'still here');
  });
});
