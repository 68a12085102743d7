// Issue 19: tokens refreshed while connected. The server sends `tokenExpiring` before the
// connection's token expires; the client asks `getToken` and sends `refreshToken` by itself.
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';

import { Clients } from './helpers/clients.js';
import { startServer, type Server } from './helpers/server.js';
import { token } from './helpers/tokens.js';
import { record, roomName, sleep, waitFor } from './helpers/wait.js';

describe('token refresh while connected', () => {
  let server: Server;
  const clients = new Clients(() => server.url);
  beforeAll(async () => {
    server = await startServer();
  });
  afterEach(() => clients.closeAll());
  afterAll(() => server?.stop());

  it('with getToken, a 3 s token keeps the client connected for 10 s, with no state change', async () => {
    const room = roomName('refresh');
    const getToken = vi.fn(() => token('alice', { ttl: 3 }));
    const alice = await clients.connected('alice', { getToken });
    await alice.joinRoom(room);
    const states = record(alice.state);
    const refreshes = vi.spyOn(alice.socket, 'emit');
    await sleep(10_000);
    expect(alice.connected).toBe(true);
    expect(states).toEqual([]);
    const sent = refreshes.mock.calls.filter(([event]) => event === 'refreshToken');
    expect(sent.length).toBeGreaterThanOrEqual(3);
    // The connect call plus one per refresh.
    expect(getToken.mock.calls.length).toBe(1 + sent.length);
    await expect(alice.sendMessage(room, 'still connected')).resolves.toMatchObject({ id: expect.any(String) });
  }, 20_000);

  it('with a fixed token, the server ends the connection at its expiry', async () => {
    const bob = await clients.connected('bob', { token: token('bob', { ttl: 2 }) });
    await waitFor(() => bob.state.get() === 'disconnected', 'disconnected at expiry', 6000);
    expect(bob.connected).toBe(false);
  }, 15_000);
});
