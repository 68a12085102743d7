// A CommonJS consumer of the built package (type-checked by test/package.test.ts).
import sb = require('@switchboard/client');
import react = require('@switchboard/client/react');

const client = sb.connect('http://127.0.0.1:3000', { token: 'jwt', autoConnect: false });
client.getHistory('lobby', { limit: 10 }).then((h) => h.messages.map((m) => m.id));
const err = new sb.SwitchboardError('NOT_IN_ROOM', 'x');
const code: 'NOT_IN_ROOM' | string = err.code;
export = [client, code, react.useRoom, react.SwitchboardProvider];
