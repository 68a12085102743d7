'use strict';
// Issue 18 items 1 and 2, as a Fastify user meets them: the plugin's options checked against
// the engine's one settings table (typos, CLI spellings, empty secrets, out-of-range values
// fail `register` naming the option), the engine's logs in the app's pino logger, and host
// callback errors logged with their stack while the client sees only `INTERNAL` — unless the
// host threw a `SwitchboardError`, whose code and message pass through. Real Fastify 5 with
// its pino logger writing to a stream the test reads, real socket.io-client.

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { Writable } = require('node:stream');
const Fastify = require('fastify');
const switchboard = require('@switchboard/node/fastify');
const { Engine, SwitchboardError } = require('@switchboard/node');

const { SECRET } = require('../helpers/fastify');
const { expiredToken } = require('../helpers/tokens');
const { connectError, userSocket, closeAll, request, expectError, emitAck, sleep } = require('../helpers/client');

/** A pino destination that keeps every line as parsed JSON. */
function capture() {
  const lines = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      for (const line of chunk.toString().split('\n')) {
        if (line.trim()) lines.push(JSON.parse(line));
      }
      done();
    },
  });
  return { lines, stream };
}

/** Registers the plugin on a fresh app; resolves the error `register` fails with (or null). */
async function registerError(options) {
  const app = Fastify({ logger: false });
  try {
    await app.register(switchboard, options);
    await app.ready();
    return null;
  } catch (error) {
    return error;
  } finally {
    await app.close();
  }
}

async function until(fn, what, ms = 5000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(20);
  }
}

describe('the plugin refuses bad options at register, naming the option', () => {
  it('a typo gets the nearest valid name', { timeout: 10000 }, async () => {
    const e = await registerError({ jwtSecret: SECRET, ratelimit: 5 });
    assert.ok(e, 'register failed');
    assert.equal(e.message, 'unknown option `ratelimit`; did you mean `rateLimit`?');
  });

  it('CLI and TOML spellings map to the Node name', { timeout: 10000 }, async () => {
    assert.equal((await registerError({ jwtSecret: SECRET, 'rate-limit': 5 })).message,
      'unknown option `rate-limit`; did you mean `rateLimit`?');
    assert.equal((await registerError({ jwtSecret: SECRET, rate_limit: 5 })).message,
      'unknown option `rate_limit`; did you mean `rateLimit`?');
    assert.equal((await registerError({ jwtSecret: SECRET, sse_ping_interval: 5 })).message,
      'unknown option `sse_ping_interval`; did you mean `ssePingInterval`?');
    // the plugin's own options are known too
    assert.equal((await registerError({ jwtSecret: SECRET, prefx: '/rt' })).message,
      'unknown option `prefx`; did you mean `prefix`?');
  });

  it('an unset secret (process.env.X undefined) or an empty one fails', { timeout: 10000 }, async () => {
    const e = await registerError({ jwtSecret: process.env.SWITCHBOARD_TEST_SURELY_UNSET });
    assert.equal(e.message, '`jwtSecret` is empty or undefined; set it or remove it');
    assert.equal((await registerError({ jwtSecret: '' })).message,
      '`jwtSecret` is empty or undefined; set it or remove it');
    assert.equal((await registerError({ jwtSecret: SECRET, apiKey: '' })).message,
      '`apiKey` is empty or undefined; set it or remove it');
    assert.match((await registerError({ jwtSecret: 'short' })).message, /invalid `jwtSecret`: an HS256 secret must be at least 16 bytes/);
  });

  it('out-of-range and wrongly typed values fail with one sentence naming the option', { timeout: 10000 }, async () => {
    const cases = [
      [{ pingInterval: 0 }, 'invalid `pingInterval`: must be greater than zero'],
      [{ pingInterval: -1 }, '`pingInterval` must be a whole number from 0 to 4294967295 (milliseconds), got -1 (number)'],
      [{ pingInterval: NaN }, '`pingInterval` must be a whole number from 0 to 4294967295 (milliseconds), got NaN (number)'],
      [{ maxPayload: '1mb' }, '`maxPayload` must be a whole number from 0 to 4294967295 (bytes), got "1mb" (string)'],
      [{ maxMessageChars: 0 }, 'invalid `maxMessageChars`: must be at least 1, got 0'],
      [{ historyLimit: 0 }, 'invalid `historyLimit`: must be at least 1, got 0'],
      [{ rateLimit: 5, rateBurst: 0 }, 'invalid `rateBurst`: must be at least 1 when rate limiting is on'],
      [{ corsOrigins: 'https://a.example' }, '`corsOrigins` must be an array of strings, got "https://a.example" (string)'],
      [{ storeMessage: 'yes' }, '`storeMessage` must be a function, got "yes" (string)'],
      [{ logLevel: 'loud' }, /^invalid `logLevel`: `loud` is not `level` or `target=level`/],
    ];
    for (const [options, expected] of cases) {
      const e = await registerError({ jwtSecret: SECRET, ...options });
      assert.ok(e, `register failed for ${JSON.stringify(options)}`);
      if (expected instanceof RegExp) assert.match(e.message, expected);
      else assert.equal(e.message, expected);
      assert.equal(e.code, 'ERR_SWITCHBOARD_OPTION', `a coded error for ${JSON.stringify(options)}`);
    }
  });

  it('the settings that were Rust-only are options now, and old names still work', { timeout: 10000 }, async () => {
    const engine = new Engine({
      jwtSecret: SECRET,
      logger: false,
      maxMessageChars: 5,
      historyLimit: 2,
      maxRoomsPerConnection: 1,
      maxSignalBytes: 2048,
      historyCacheRooms: 10,
      recoveryLogBytes: 1 << 20,
      yjsMaxAwarenessBytes: 1024,
      yjsMaxAwarenessClients: 2,
      ssePingInterval: 1000,
      rateLimitPerSecond: 0, // the old name of rateLimit
      callbackTimeout: 500, // the old name of hostCallbackTimeout
    });
    const port = await engine.listen({ port: 0 });
    try {
      const s = await userSocket(`http://127.0.0.1:${port}`, 'alice');
      await request(s, 'joinRoom', 'one');
      await expectError(request(s, 'sendMessage', { roomId: 'one', text: 'too long' }), 'INVALID_MESSAGE');
      await expectError(request(s, 'joinRoom', 'two'), 'ACCESS_DENIED');
      for (const text of ['a', 'b', 'c']) await request(s, 'sendMessage', { roomId: 'one', text });
      const { messages } = await request(s, 'getHistory', { roomId: 'one' });
      assert.deepEqual(messages.map((m) => m.text), ['b', 'c'], 'historyLimit 2');
    } finally {
      closeAll();
      await engine.close();
    }
    assert.throws(() => new Engine({ jwtSecret: SECRET, logger: false, rateLimit: 1, rateLimitPerSecond: 2 }),
      /`rateLimitPerSecond` is the old name of `rateLimit`; give only `rateLimit`/);
  });
});

describe('logs and host errors in the app\'s pino logger', () => {
  let app;
  let url;
  let log;
  before(async () => {
    log = capture();
    app = Fastify({ logger: { level: 'info', stream: log.stream } });
    await app.register(switchboard, {
      jwtSecret: SECRET,
      rateLimit: 0,
      async storeMessage(message) {
        if (message.text === 'quota') throw new SwitchboardError('QUOTA_EXCEEDED', 'You sent too much today');
        if (message.text === 'crash') throw new Error('INSERT failed: password=hunter2');
      },
    });
    app.switchboard.on('explode', async () => {
      throw new Error('handler detail: /srv/secret/path');
    });
    app.switchboard.on('quota', async () => {
      throw new SwitchboardError('QUOTA_EXCEEDED', 'Upgrade your plan');
    });
    app.switchboard.on('badcode', async () => {
      throw new SwitchboardError('not a code', 'whatever');
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    url = `http://127.0.0.1:${app.server.address().port}`;
  });
  after(() => app && app.close());
  afterEach(closeAll);

  it('a thrown on() handler error: logged with its stack in pino, the client sees INTERNAL only', { timeout: 10000 }, async () => {
    const s = await userSocket(url, 'alice');
    const e = await expectError(request(s, 'explode'), 'INTERNAL');
    assert.equal(e.message, 'Internal error');
    assert.doesNotMatch(JSON.stringify(e), /secret/);
    const line = await until(() => log.lines.find((l) => l.msg === 'host callback failed' && l.hook === 'explode'),
      'the error is in the app log');
    assert.equal(line.level, 50, 'pino error level');
    assert.equal(line.plugin, 'switchboard', 'logged through app.log.child({plugin})');
    assert.equal(line.sid, s.id, 'the socket id');
    assert.match(line.error, /handler detail: \/srv\/secret\/path/);
    assert.match(line.error, /\n\s+at .*settings-logs\.test\.js/, 'with its stack');
  });

  it('a thrown storeMessage error: logged, the sender gets INTERNAL, nobody gets the message', { timeout: 10000 }, async () => {
    const s = await userSocket(url, 'bob');
    await request(s, 'joinRoom', 'r1');
    const e = await expectError(request(s, 'sendMessage', { roomId: 'r1', text: 'crash' }), 'INTERNAL');
    assert.equal(e.message, 'Internal error');
    const line = await until(() => log.lines.find((l) => l.hook === 'storeMessage' && /hunter2/.test(l.error || '')),
      'the store error is in the app log');
    assert.equal(line.level, 50);
    assert.match(line.error, /\n\s+at /);
  });

  it('a SwitchboardError passes its code and message through (handlers and storeMessage)', { timeout: 10000 }, async () => {
    const s = await userSocket(url, 'carol');
    // the app's own code is not one of the contract's, so the raw ack is compared
    assert.deepEqual(await emitAck(s, 'quota'), [{ code: 'QUOTA_EXCEEDED', message: 'Upgrade your plan' }]);
    await request(s, 'joinRoom', 'r2');
    assert.deepEqual(await emitAck(s, 'sendMessage', { roomId: 'r2', text: 'quota' }),
      [{ code: 'QUOTA_EXCEEDED', message: 'You sent too much today' }]);
    // a code clients could not switch on is not passed: INTERNAL, and the mistake is logged
    const b = await expectError(request(s, 'badcode'), 'INTERNAL');
    assert.equal(b.message, 'Internal error');
    await until(() => log.lines.find((l) => l.hook === 'badcode' && /invalid client error code/.test(l.error || '')),
      'the bad code is logged');
  });

  it('an engine event (a refused connection, with its reason) lands in app.log', { timeout: 10000 }, async () => {
    const err = await connectError(url, { auth: { token: expiredToken('mallory') } });
    assert.equal(err.message, 'Token expired');
    const line = await until(() => log.lines.find((l) => l.msg === 'connection refused' && l.reason === 'token_expired'),
      'the refusal is in the app log');
    assert.equal(line.level, 30, 'pino info level');
    assert.equal(line.target, 'switchboard::socketio');
    assert.equal(typeof line.sid, 'string');
  });
});

describe('new Engine({logger, logLevel})', () => {
  it('a pino-like logger gets the engine\'s events filtered by logLevel; logger: false gets none', { timeout: 10000 }, async () => {
    const got = [];
    const logger = {};
    for (const level of ['trace', 'debug', 'info', 'warn', 'error']) logger[level] = (fields, msg) => got.push({ level, fields, msg });
    const engine = new Engine({ jwtSecret: SECRET, logger, logLevel: 'switchboard=warn' });
    const port = await engine.listen({ port: 0 });
    try {
      await until(() => got.find((g) => g.level === 'warn' && /CORS/.test(g.msg)), 'the CORS warning');
      const err = await connectError(`http://127.0.0.1:${port}`, { auth: { token: 'garbage' } });
      assert.equal(err.message, 'Invalid token');
      await sleep(200);
      assert.equal(got.filter((g) => g.msg === 'connection refused').length, 0, 'info events filtered out at warn');
      assert.equal(got.find((g) => g.msg === 'listening'), undefined, 'info filtered out');
    } finally {
      await engine.close();
    }
    const quiet = new Engine({ jwtSecret: SECRET, logger: false });
    await quiet.close();
    assert.throws(() => new Engine({ jwtSecret: SECRET, logger: 'console' }), /`logger` must be an object/);
  });

  it('two engines in one process: each logger gets its own engine\'s events', { timeout: 10000 }, async () => {
    const logs = { a: [], b: [] };
    const loggerFor = (name) => {
      const l = {};
      for (const level of ['trace', 'debug', 'info', 'warn', 'error']) l[level] = (fields, msg) => logs[name].push({ fields, msg });
      return l;
    };
    const a = new Engine({ jwtSecret: SECRET, logger: loggerFor('a'), logLevel: 'info' });
    const b = new Engine({ jwtSecret: SECRET, logger: loggerFor('b'), logLevel: 'info' });
    try {
      const portB = await b.listen({ port: 0 });
      await a.listen({ port: 0 });
      await connectError(`http://127.0.0.1:${portB}`, { auth: { token: 'garbage' } });
      await until(() => logs.b.find((l) => l.msg === 'connection refused'), 'b logs its refusal');
      await sleep(200);
      assert.equal(logs.a.filter((l) => l.msg === 'connection refused').length, 0, 'a does not get b\'s refusal');
      assert.equal(logs.a.filter((l) => /CORS/.test(l.msg)).length, 1, 'a: its own start-up warning only');
      assert.equal(logs.b.filter((l) => /CORS/.test(l.msg)).length, 1, 'b: its own start-up warning only');
      assert.equal(logs.a.filter((l) => l.msg === 'listening').length, 1);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('an authenticate that throws: the client gets "Internal error", a SwitchboardError its message', { timeout: 10000 }, async () => {
    const got = [];
    const logger = { info() {}, warn() {}, error: (fields, msg) => got.push({ fields, msg }) };
    const engine = new Engine({
      logger,
      async authenticate({ auth }) {
        if (auth.token === 'banned') throw new SwitchboardError('BANNED', 'You are banned');
        throw new Error('LDAP bind failed for cn=admin');
      },
    });
    const port = await engine.listen({ port: 0 });
    try {
      const url = `http://127.0.0.1:${port}`;
      assert.equal((await connectError(url, { auth: { token: 'x' } })).message, 'Internal error');
      assert.equal((await connectError(url, { auth: { token: 'banned' } })).message, 'You are banned');
      const line = await until(() => got.find((g) => g.fields.hook === 'authenticate'), 'the auth error is logged');
      assert.match(line.fields.error, /LDAP bind failed/);
    } finally {
      await engine.close();
    }
  });
});
