// An ES module consumer of the built package (type-checked by test/package.test.ts).
import { connect, SwitchboardError, type ChatMessage, type ConnectionState, type SendResult } from '@switchboard/client';
import { SwitchboardProvider, useConnection, useRoom, type UseRoomResult } from '@switchboard/client/react';

const client = connect('http://127.0.0.1:3000', { getToken: async () => 'jwt' });
const state: ConnectionState = client.state.get();
client.on('message', (m: ChatMessage) => m.text.toUpperCase());
client.on('typing', (e) => (e.isTyping ? e.username : e.userId));
client.on('error', (e) => e.code satisfies SwitchboardError['code']);
// @ts-expect-error: `message` payloads have no `foo`
client.on('message', (m) => m.foo);
const sent: Promise<SendResult> = client.sendMessage('lobby', 'hi');
sent.catch((e: unknown) => (e instanceof SwitchboardError ? e.code : null));
export const used = [state, SwitchboardProvider, useConnection, useRoom, null as unknown as UseRoomResult];
