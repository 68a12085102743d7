// @vitest-environment jsdom
// client/README.md's chat component, taken from the README as it is and rendered against a real
// server through the built package (only the server URL is replaced).
import fs from 'node:fs';
import path from 'node:path';

import type { ReactNode } from 'react';
import { act, cleanup, fireEvent, render, screen, waitFor } from '@testing-library/react';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

import type { ChatMessage, TypingEvent } from '../src/index.js';
import { Clients } from './helpers/clients.js';
import { CLIENT_ROOT, readmeChat } from './helpers/readme.js';
import { startServer, type Server } from './helpers/server.js';
import { token } from './helpers/tokens.js';
import { waitFor as poll } from './helpers/wait.js';

let server: Server;
const clients = new Clients(() => server.url);
const consoleError = console.error;
const generated = path.join(CLIENT_ROOT, 'test/.generated/readme-chat.tsx');

beforeAll(async () => {
  server = await startServer();
  vi.spyOn(console, 'error').mockImplementation((...args: unknown[]) => {
    if (typeof args[0] === 'string' && args[0].includes('not wrapped in act')) return;
    consoleError(...args);
  });
});
afterAll(async () => {
  cleanup();
  clients.closeAll();
  vi.restoreAllMocks();
  await server?.stop();
});

describe('the README chat component', () => {
  it('is under 40 lines', () => {
    expect(readmeChat().trimEnd().split('\n').length).toBeLessThan(40);
  });

  it('joins, shows history, members and typing, and sends', async () => {
    const source = readmeChat();
    expect(source).toContain("'http://127.0.0.1:3000'");
    fs.mkdirSync(path.dirname(generated), { recursive: true });
    fs.writeFileSync(generated, source.replace("'http://127.0.0.1:3000'", JSON.stringify(server.url)));
    const fetch = vi.fn(async () => ({ text: async () => token('alice', { username: 'Alice' }) }));
    vi.stubGlobal('fetch', fetch);

    const bob = await clients.connected('bob');
    await bob.joinRoom('lobby');
    await bob.sendMessage('lobby', 'welcome');
    const atBob: ChatMessage[] = [];
    const typingAtBob: TypingEvent[] = [];
    bob.on('message', (m) => atBob.push(m));
    bob.on('typing', (e) => typingAtBob.push(e));

    const { App } = (await import(/* @vite-ignore */ generated)) as { App: () => ReactNode };
    render(<App />);
    await waitFor(() => expect(screen.getByRole('heading').textContent).toBe('lobby (connected): Bob, Alice'));
    expect(fetch).toHaveBeenCalledWith('/token');
    await waitFor(() => expect(screen.getByRole('list').textContent).toBe('Bob welcome'));

    const input = screen.getByLabelText('message') as HTMLInputElement;
    act(() => {
      fireEvent.change(input, { target: { value: 'hi' } });
    });
    await poll(() => typingAtBob.length === 1, 'bob sees alice typing');
    expect(typingAtBob[0]).toMatchObject({ userId: 'alice', isTyping: true });
    act(() => {
      fireEvent.click(screen.getByRole('button', { name: 'Send' }));
    });
    await waitFor(() => expect(screen.getByRole('list').textContent).toBe('Bob welcomeAlice hi'));
    expect(input.value).toBe('');
    await poll(() => atBob.length === 1 && typingAtBob.length === 2, 'the message and the typing stop at bob');
    expect(atBob[0]).toMatchObject({ text: 'hi', username: 'Alice' });

    bob.typing('lobby');
    await waitFor(() => expect(screen.getByText('Bob typing…')).toBeTruthy());
    bob.stopTyping('lobby');
    await waitFor(() => expect(screen.queryByText('Bob typing…')).toBeNull());
    vi.unstubAllGlobals();
  });
});
