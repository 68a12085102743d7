// @vitest-environment jsdom
// The React hooks against a real server, rendered with @testing-library/react in jsdom.
import { act, cleanup, render, screen, waitFor as rtlWaitFor } from '@testing-library/react';
import { StrictMode, useState } from 'react';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';

import type { SwitchboardClient } from '../src/index.js';
import { SwitchboardProvider, useConnection, useRoom, useSwitchboard, type UseRoomResult } from '../src/react/index.js';
import { Clients } from './helpers/clients.js';
import { startServer, type Server } from './helpers/server.js';
import { token } from './helpers/tokens.js';
import { roomName, waitFor } from './helpers/wait.js';

let server: Server;
let noRecovery: Server;
const clients = new Clients(() => server.url);
const noRecoveryClients = new Clients(() => noRecovery.url);
const consoleError = console.error;

beforeAll(async () => {
  [server, noRecovery] = await Promise.all([
    startServer(),
    startServer({ args: ['--recovery-window', '0', '--presence-grace', '0'] }),
  ]);
  // Socket events update state outside act(); that is what a real app does.
  vi.spyOn(console, 'error').mockImplementation((...args: unknown[]) => {
    if (typeof args[0] === 'string' && args[0].includes('not wrapped in act')) return;
    consoleError(...args);
  });
});
afterEach(() => {
  cleanup();
  clients.closeAll();
  noRecoveryClients.closeAll();
});
afterAll(async () => {
  vi.restoreAllMocks();
  await Promise.all([server?.stop(), noRecovery?.stop()]);
});

/** Renders useRoom and exposes its latest result. */
function Probe({ roomId, onResult }: { roomId: string; onResult: (r: UseRoomResult) => void }) {
  const result = useRoom(roomId);
  onResult(result);
  return (
    <ul data-testid={`room-${roomId}`}>
      {result.messages.map((m) => (
        <li key={m.id}>{m.text}</li>
      ))}
    </ul>
  );
}

function latest() {
  const box: { current?: UseRoomResult; renders: number } = { renders: 0 };
  const onResult = (r: UseRoomResult) => {
    box.current = r;
    box.renders += 1;
  };
  return { box, onResult };
}

describe('SwitchboardProvider and useConnection', () => {
  it('shows the connection state of a given client', async () => {
    const alice = clients.make('alice');
    function Status() {
      const { status, connected, error } = useConnection();
      return <p data-testid="status">{`${status} ${connected} ${error?.code ?? '-'}`}</p>;
    }
    render(
      <SwitchboardProvider client={alice}>
        <Status />
      </SwitchboardProvider>,
    );
    await rtlWaitFor(() => expect(screen.getByTestId('status').textContent).toBe('connected true -'));
    act(() => {
      alice.disconnect();
    });
    expect(screen.getByTestId('status').textContent).toBe('disconnected false -');
  });

  it('reports a refused token', async () => {
    const client = clients.make('alice', { token: token('alice', { ttl: -3600 }) });
    function Status() {
      const { status, error } = useConnection();
      return <p data-testid="status">{`${status} ${error?.code} ${error?.message}`}</p>;
    }
    render(
      <SwitchboardProvider client={client}>
        <Status />
      </SwitchboardProvider>,
    );
    await rtlWaitFor(() =>
      expect(screen.getByTestId('status').textContent).toBe('disconnected UNAUTHORIZED Token expired'),
    );
  });

  it('with a url it connects itself (once under StrictMode) and closes on unmount', async () => {
    const getToken = vi.fn(() => token('carol', { username: 'Carol' }));
    let seen: SwitchboardClient | undefined;
    function Status() {
      const { status } = useConnection();
      seen = useSwitchboard();
      return <p data-testid="status">{status}</p>;
    }
    const view = render(
      <StrictMode>
        <SwitchboardProvider url={server.url} getToken={getToken} options={{ socketOptions: { transports: ['websocket'] } }}>
          <Status />
        </SwitchboardProvider>
      </StrictMode>,
    );
    await rtlWaitFor(() => expect(screen.getByTestId('status').textContent).toBe('connected'));
    expect(getToken).toHaveBeenCalledTimes(1);
    const client = seen!;
    view.unmount();
    await waitFor(() => client.state.get() === 'disconnected', 'closed after unmount');
    await expect(client.joinRoom('x')).rejects.toMatchObject({ code: 'CLOSED' });
  });

  it('useRoom outside a provider throws a clear error', () => {
    vi.mocked(console.error).mockImplementationOnce(() => undefined);
    expect(() => render(<Probe roomId="x" onResult={() => {}} />)).toThrow(/inside <SwitchboardProvider>/);
  });
});

describe('useRoom', () => {
  it('loads history on join, appends new messages, tracks members and typing, sends', async () => {
    const room = roomName('react');
    const bob = await clients.connected('bob');
    await bob.joinRoom(room);
    await bob.sendMessage(room, 'first');
    await bob.sendMessage(room, 'second');
    const alice = clients.make('alice');
    const { box, onResult } = latest();

    render(
      <SwitchboardProvider client={alice}>
        <Probe roomId={room} onResult={onResult} />
      </SwitchboardProvider>,
    );
    expect(box.current!.status).toBe('joining');
    await rtlWaitFor(() => expect(box.current!.status).toBe('joined'));
    expect(box.current!.error).toBeNull();
    expect(box.current!.messages.map((m) => m.text)).toEqual(['first', 'second']);
    expect(box.current!.members.map((m) => m.userId).sort()).toEqual(['alice', 'bob']);

    await bob.sendMessage(room, 'third');
    await rtlWaitFor(() => expect(box.current!.messages.map((m) => m.text)).toEqual(['first', 'second', 'third']));
    expect(screen.getByTestId(`room-${room}`).textContent).toBe('firstsecondthird');

    bob.typing(room);
    await rtlWaitFor(() => expect(box.current!.typingUsers).toEqual([{ userId: 'bob', username: 'Bob' }]));
    bob.stopTyping(room);
    await rtlWaitFor(() => expect(box.current!.typingUsers).toEqual([]));

    const typingAtBob = vi.fn();
    bob.on('typing', typingAtBob);
    act(() => box.current!.typing());
    await rtlWaitFor(() => expect(typingAtBob).toHaveBeenCalledTimes(1));
    expect(typingAtBob.mock.calls[0]![0]).toMatchObject({ userId: 'alice', isTyping: true });

    let result: unknown;
    await act(async () => {
      result = await box.current!.send('from the hook');
    });
    expect(result).toMatchObject({ id: expect.any(String), timestamp: expect.any(String) });
    await rtlWaitFor(() => expect(box.current!.messages.at(-1)!.text).toBe('from the hook'));
    await rtlWaitFor(() => expect(typingAtBob).toHaveBeenCalledTimes(2)); // sending stopped typing
    expect(box.current!.messages).toHaveLength(4);

    await act(async () => {
      await expect(box.current!.send('')).rejects.toMatchObject({ code: 'INVALID_MESSAGE' });
    });
    expect(box.current!.error?.code).toBe('INVALID_MESSAGE');

    const left = vi.fn();
    bob.on('userLeft', left);
    cleanup();
    await waitFor(() => left.mock.calls.length === 1, 'alice left the room after unmount');
    expect(alice.rooms).toEqual([]);
  });

  it('two components on one room keep their own listeners; unmounting one leaves the other working', async () => {
    const room = roomName('two');
    const bob = await clients.connected('bob');
    await bob.joinRoom(room);
    const alice = await clients.connected('alice');
    const baseline = alice.socket.listeners('message').length;
    const a = latest();
    const b = latest();
    function Two() {
      const [showA, setShowA] = useState(true);
      const [showB, setShowB] = useState(true);
      return (
        <>
          <button data-testid="hide-a" onClick={() => setShowA(false)} />
          <button data-testid="hide-b" onClick={() => setShowB(false)} />
          {showA && <Probe roomId={room} onResult={a.onResult} />}
          {showB && <Probe roomId={room} onResult={b.onResult} />}
        </>
      );
    }
    render(
      <SwitchboardProvider client={alice}>
        <Two />
      </SwitchboardProvider>,
    );
    await rtlWaitFor(() => {
      expect(a.box.current!.status).toBe('joined');
      expect(b.box.current!.status).toBe('joined');
    });
    expect(alice.socket.listeners('message').length).toBe(baseline + 2);
    expect(a.box.current!.members).toHaveLength(2);
    expect(b.box.current!.members).toHaveLength(2);

    await bob.sendMessage(room, 'to both');
    await rtlWaitFor(() => {
      expect(a.box.current!.messages.map((m) => m.text)).toEqual(['to both']);
      expect(b.box.current!.messages.map((m) => m.text)).toEqual(['to both']);
    });

    act(() => screen.getByTestId('hide-a').click());
    expect(alice.socket.listeners('message').length).toBe(baseline + 1);
    const rendersOfA = a.box.renders;
    await bob.sendMessage(room, 'to b only');
    await rtlWaitFor(() => expect(b.box.current!.messages.map((m) => m.text)).toEqual(['to both', 'to b only']));
    expect(a.box.renders).toBe(rendersOfA);
    // B still holds the room: alice did not leave it.
    await new Promise((r) => setTimeout(r, 50));
    expect(alice.rooms).toEqual([room]);
    expect(b.box.current!.members).toHaveLength(2);

    const left = vi.fn();
    bob.on('userLeft', left);
    act(() => screen.getByTestId('hide-b').click());
    expect(alice.socket.listeners('message').length).toBe(baseline);
    await waitFor(() => left.mock.calls.length === 1, 'userLeft after the last component unmounted');
    expect(alice.rooms).toEqual([]);
  });

  it('a component mounted later on a joined room gets the members and its own history', async () => {
    const room = roomName('later');
    const alice = await clients.connected('alice');
    const a = latest();
    const b = latest();
    const view = render(
      <SwitchboardProvider client={alice}>
        <Probe roomId={room} onResult={a.onResult} />
      </SwitchboardProvider>,
    );
    await rtlWaitFor(() => expect(a.box.current!.status).toBe('joined'));
    await alice.sendMessage(room, 'earlier');
    view.rerender(
      <SwitchboardProvider client={alice}>
        <Probe roomId={room} onResult={a.onResult} />
        <Probe roomId={room} onResult={b.onResult} />
      </SwitchboardProvider>,
    );
    await rtlWaitFor(() => expect(b.box.current!.status).toBe('joined'));
    expect(b.box.current!.members).toEqual([{ userId: 'alice', username: 'Alice' }]);
    expect(b.box.current!.messages.map((m) => m.text)).toEqual(['earlier']);
  });

  it('switching roomId leaves the old room and shows the new one', async () => {
    const [first, second] = [roomName('switch-1'), roomName('switch-2')];
    const alice = await clients.connected('alice');
    const { box, onResult } = latest();
    const view = render(
      <SwitchboardProvider client={alice}>
        <Probe roomId={first} onResult={onResult} />
      </SwitchboardProvider>,
    );
    await rtlWaitFor(() => expect(box.current!.status).toBe('joined'));
    await alice.sendMessage(first, 'in the first room');
    await rtlWaitFor(() => expect(box.current!.messages).toHaveLength(1));
    view.rerender(
      <SwitchboardProvider client={alice}>
        <Probe roomId={second} onResult={onResult} />
      </SwitchboardProvider>,
    );
    expect(box.current!.messages).toEqual([]);
    await rtlWaitFor(() => expect(box.current!.status).toBe('joined'));
    await waitFor(() => alice.rooms.length === 1, 'the first room left');
    expect(alice.rooms).toEqual([second]);
  });

  it('under StrictMode joins once and does not leave', async () => {
    const room = roomName('strict');
    const alice = await clients.connected('alice');
    const emit = vi.spyOn(alice.socket, 'emit');
    const baseline = alice.socket.listeners('message').length;
    const { box, onResult } = latest();
    render(
      <StrictMode>
        <SwitchboardProvider client={alice}>
          <Probe roomId={room} onResult={onResult} />
        </SwitchboardProvider>
      </StrictMode>,
    );
    await rtlWaitFor(() => expect(box.current!.status).toBe('joined'));
    await new Promise((r) => setTimeout(r, 50));
    const names = emit.mock.calls.map(([e]) => e);
    expect(names.filter((e) => e === 'joinRoom')).toHaveLength(1);
    expect(names.filter((e) => e === 'leaveRoom')).toHaveLength(0);
    expect(alice.socket.listeners('message').length).toBe(baseline + 1);
    expect(alice.rooms).toEqual([room]);
  });

  it('a forbidden room ends in status error with ACCESS_DENIED', async () => {
    const alice = await clients.connected('alice', { tokenOptions: { rooms: ['team-*'] } });
    const { box, onResult } = latest();
    render(
      <SwitchboardProvider client={alice}>
        <Probe roomId="secret" onResult={onResult} />
      </SwitchboardProvider>,
    );
    await rtlWaitFor(() => expect(box.current!.status).toBe('error'));
    expect(box.current!.error).toMatchObject({ code: 'ACCESS_DENIED', message: 'You may not join secret' });
  });

  it('after a reconnect that was not recovered: rejoined, missed messages loaded, no duplicates', async () => {
    const room = roomName('react-rejoin');
    const bob = await noRecoveryClients.connected('bob');
    await bob.joinRoom(room);
    const alice = await noRecoveryClients.connected('alice');
    const { box, onResult } = latest();
    render(
      <SwitchboardProvider client={alice}>
        <Probe roomId={room} onResult={onResult} />
      </SwitchboardProvider>,
    );
    await rtlWaitFor(() => expect(box.current!.status).toBe('joined'));
    await bob.sendMessage(room, 'before');
    await rtlWaitFor(() => expect(box.current!.messages).toHaveLength(1));

    const rejoined = vi.fn();
    alice.on('rejoined', rejoined);
    alice.socket.io.engine.close();
    await bob.sendMessage(room, 'while away');
    await waitFor(() => rejoined.mock.calls.length === 1, 'rejoined');
    await rtlWaitFor(() => expect(box.current!.messages.map((m) => m.text)).toEqual(['before', 'while away']));
    await bob.sendMessage(room, 'after');
    await rtlWaitFor(() => expect(box.current!.messages.map((m) => m.text)).toEqual(['before', 'while away', 'after']));
    expect(box.current!.members.map((m) => m.userId).sort()).toEqual(['alice', 'bob']);
  });
});
