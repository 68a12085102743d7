'use strict';
// Issue 19: identity from a real identity provider. A local HTTPS JWKS server (helpers/idp.js)
// publishes keys the tests rotate and take down; tokens are checked for issuer and audience;
// connections are bound to their token's `exp` and refreshed while connected (`tokenExpiring`
// / `refreshToken`), and SSE streams and Yjs connections end at it.

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const WebSocket = require('ws');
const Y = require('yjs');
const { WebsocketProvider } = require('y-websocket');
const { startServer, runCli } = require('../helpers/server');
const { connected, connectError, closeAll, once, request, expectError } = require('../helpers/client');
const { token } = require('../helpers/tokens');
const { rawStream, closeAllStreams } = require('../helpers/sse');
const { removeCertificateFiles } = require('../helpers/tls');
const { signingKey, sign, claims, startProvider } = require('../helpers/idp');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let roomSeq = 0;
const room = () => `id-${process.pid}-${++roomSeq}`;

after(removeCertificateFiles);

function jwksArgs(idp, ...more) {
  return ['--jwks-url', idp.url, '--jwks-ca-file', idp.caFile, ...more];
}

describe('JWKS: keys from an identity provider, selected by kid (issue 19 item 1)', () => {
  let idp;
  let srv;
  const keys = {};
  before(async () => {
    idp = await startProvider();
    for (const alg of ['RS256', 'PS256', 'ES256', 'ES384', 'EdDSA']) keys[alg] = signingKey(`k-${alg}`, alg);
    idp.keys = Object.values(keys);
    srv = await startServer({ secret: null, args: jwksArgs(idp, '--jwks-refetch-interval', '1000') });
  });
  after(async () => {
    if (srv) await srv.stop();
    if (idp) await idp.close();
  });
  afterEach(closeAll);

  it('accepts RS256, PS256, ES256, ES384 and EdDSA tokens, each verified with its kid\'s key', async () => {
    // Fetched once at start (not per token, not per endpoint).
    for (let i = 0; i < 100 && idp.requests() === 0; i++) await sleep(20);
    assert.equal(idp.requests(), 1, 'one JWKS fetch at start');
    for (const [alg, key] of Object.entries(keys)) {
      const s = await connected(srv.url, { auth: { token: sign(key, claims(`user-${alg}`)) } });
      const members = once(s, 'roomMembers');
      await request(s, 'joinRoom', room());
      const [{ members: list }] = await members;
      s.close();
      assert.deepEqual(list.map((m) => m.userId), [`user-${alg}`], alg);
    }
    // SSE and Yjs verify with the same key set.
    const tok = sign(keys.EdDSA, claims('sse-user'));
    const stream = await rawStream(`${srv.url}/events?rooms=${room()}`, { headers: { Authorization: `Bearer ${tok}` } });
    assert.equal(stream.status, 200);
    stream.close();
    const ydoc = new Y.Doc();
    const p = new WebsocketProvider(`${srv.url.replace(/^http/, 'ws')}/yjs`, `jwks-doc-${process.pid}`, ydoc, {
      WebSocketPolyfill: WebSocket, disableBc: true, params: { token: sign(keys.ES384, claims('yjs-user')) },
    });
    try {
      await new Promise((resolve) => p.once('sync', resolve));
    } finally {
      p.destroy();
      ydoc.destroy();
    }
    assert.equal(idp.requests(), 1, 'known kids cost no fetch, on any endpoint');
  });

  it('a token whose alg does not fit its key is refused "Invalid token" (HS256 with the public key, PS256 on an RS256-pinned key)', async () => {
    const rsa = keys.RS256;
    // Algorithm confusion: HS256 keyed with the RSA key's public JWK text.
    const head = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT', kid: rsa.kid })).toString('base64url');
    const body = Buffer.from(JSON.stringify(claims('mallory'))).toString('base64url');
    const mac = require('node:crypto').createHmac('sha256', JSON.stringify(rsa.jwk)).update(`${head}.${body}`).digest('base64url');
    let err = await connectError(srv.url, { auth: { token: `${head}.${body}.${mac}` } });
    assert.equal(err.message, 'Invalid token');
    // An RSA key published with `alg: RS256` does not verify a PS256 token.
    const pinned = signingKey('pinned', 'PS256');
    pinned.jwk.alg = 'RS256';
    idp.keys = [...Object.values(keys), pinned];
    await sleep(1100);
    err = await connectError(srv.url, { auth: { token: sign(pinned, claims('mallory')) } });
    assert.equal(err.message, 'Invalid token');
  });

  it('a rotated key is accepted after rotation without a restart; an unknown kid is "Unknown signing key"', async () => {
    const next = signingKey('rotated-1', 'RS256');
    const before = idp.requests();
    let err = await connectError(srv.url, { auth: { token: sign(next, claims('alice')) } });
    assert.equal(err.message, 'Unknown signing key');
    // The provider rotates: the new key is published (the old ones stay for a while).
    idp.keys = [...Object.values(keys), next];
    await sleep(1100); // past the refetch interval
    const s = await connected(srv.url, { auth: { token: sign(next, claims('alice')) } });
    assert.ok(s.connected);
    assert.ok(idp.requests() > before, 'the unknown kid made the engine ask the provider again');
    // SSE takes the same keys.
    const stream = await rawStream(`${srv.url}/events?rooms=${room()}`, { headers: { Authorization: `Bearer ${sign(next, claims('alice'))}` } });
    assert.equal(stream.status, 200);
    stream.close();
  });

  it('with the provider down, the last good key set keeps working', async () => {
    idp.down(true);
    try {
      await sleep(1100);
      const unknown = signingKey('never-published', 'ES256');
      const before = idp.requests();
      const err = await connectError(srv.url, { auth: { token: sign(unknown, claims('x')) } });
      assert.equal(err.message, 'Unknown signing key');
      assert.equal(idp.requests(), before + 1, 'one failed fetch for the unknown kid');
      const s = await connected(srv.url, { auth: { token: sign(keys.ES256, claims('bob')) } });
      assert.ok(s.connected);
    } finally {
      idp.down(false);
    }
  });

  it('a flood of forged kids costs the provider one fetch per refetch interval', { timeout: 30000 }, async () => {
    await sleep(1100);
    const forger = signingKey('forger', 'ES256');
    const before = idp.requests();
    const started = Date.now();
    const refusals = [];
    // 3 s of forged kids: 40 concurrent connections every 250 ms, each a new kid.
    let n = 0;
    while (Date.now() - started < 3000) {
      const batch = [];
      for (let i = 0; i < 40; i++) {
        const tok = sign(forger, claims('mallory'), { header: { kid: `forged-${++n}` } });
        batch.push(connectError(srv.url, { auth: { token: tok } }).then((e) => refusals.push(e.message)));
      }
      await Promise.all(batch);
      await sleep(250);
    }
    const elapsed = (Date.now() - started) / 1000;
    const fetches = idp.requests() - before;
    console.log(`# ${refusals.length} forged-kid connections in ${elapsed.toFixed(1)} s: ${fetches} JWKS fetches`);
    assert.ok(refusals.length >= 200, `${refusals.length} forged connections`);
    assert.ok(refusals.every((m) => m === 'Unknown signing key'), [...new Set(refusals)].join(', '));
    // One fetch per 1 s interval, at most (plus one for the interval that was running).
    assert.ok(fetches <= Math.ceil(elapsed) + 1, `${fetches} fetches for ${refusals.length} forged tokens in ${elapsed.toFixed(1)} s`);
    assert.ok(fetches >= 1, 'unknown kids do ask the provider');
  });
});

describe('claims checked and kept: issuer, audience, exp, claim names (issue 19 items 2 and 4)', () => {
  let idp;
  let srv;
  let key;
  const ISS = 'https://tenant.example.auth0.com/';
  before(async () => {
    idp = await startProvider();
    key = signingKey('k1', 'RS256');
    idp.keys = [key];
    srv = await startServer({
      secret: null,
      args: jwksArgs(idp, '--jwt-issuer', `https://other.example/,${ISS}`, '--jwt-audience', 'https://chat.example/api',
        '--jwt-user-id-claim', 'email', '--jwt-username-claim', 'name'),
    });
  });
  after(async () => {
    if (srv) await srv.stop();
    if (idp) await idp.close();
  });
  afterEach(() => { closeAll(); closeAllStreams(); });

  const good = (extra = {}) => claims('auth0|123', 3600, {
    iss: ISS, aud: ['https://chat.example/api', 'https://tenant.example.auth0.com/userinfo'],
    email: 'ann@example.com', name: 'Ann', ...extra,
  });

  it('each refusal has its own connect_error message', async () => {
    const now = Math.floor(Date.now() / 1000);
    const cases = [
      [good({ iss: 'https://evil.example/' }), 'Invalid token issuer'],
      [(() => { const c = good(); delete c.iss; return c; })(), 'Invalid token issuer'],
      [good({ aud: 'https://other.example/api' }), 'Invalid token audience'],
      [(() => { const c = good(); delete c.aud; return c; })(), 'Invalid token audience'],
      [good({ nbf: now + 3600 }), 'Token not yet valid'],
      [good({ iat: now - 7200, exp: now - 3600 }), 'Token expired'],
      [(() => { const c = good(); delete c.exp; return c; })(), 'Token has no expiry'],
      [(() => { const c = good(); delete c.email; return c; })(), 'Invalid token'],
    ];
    for (const [c, message] of cases) {
      const err = await connectError(srv.url, { auth: { token: sign(key, c) } });
      assert.equal(err.message, message, JSON.stringify(c));
    }
    // SSE answers 401 with the same message.
    const sse = await rawStream(`${srv.url}/events`, { headers: { Authorization: `Bearer ${sign(key, good({ aud: 'x' }))}` } });
    assert.equal(sse.status, 401);
    await sse.done;
    assert.equal(JSON.parse(sse.text).message, 'Invalid token audience');
  });

  it('the configured claims name the user; the rest are kept', async () => {
    const s = await connected(srv.url, { auth: { token: sign(key, good()) } });
    const r = room();
    const members = once(s, 'roomMembers');
    await request(s, 'joinRoom', r);
    const [{ members: list }] = await members;
    assert.deepEqual(list, [{ userId: 'ann@example.com', username: 'Ann' }]);
  });
});

describe('tokens refreshed while connected (issue 19 item 3)', () => {
  let srv;
  before(async () => { srv = await startServer(); });
  after(() => srv && srv.stop());
  afterEach(() => { closeAll(); closeAllStreams(); });

  it('a 3 s token with refresh stays connected for 10 s; one without refresh is disconnected at expiry', { timeout: 30000 }, async () => {
    const r = room();
    const refreshing = await connected(srv.url, { auth: { token: token('alice', { expiresIn: 3 }) } });
    const warnings = [];
    const acks = [];
    refreshing.on('tokenExpiring', (data) => {
      warnings.push({ at: Date.now(), ...data });
      refreshing.emit('refreshToken', token('alice', { expiresIn: 3 }), (err, result) => acks.push({ err, result }));
    });
    await request(refreshing, 'joinRoom', r);
    const expiring = await connected(srv.url, { auth: { token: token('bob', { expiresIn: 3 }) } });
    const expiringToken = expiring.auth.token;
    const gone = once(expiring, 'disconnect', 6000);
    const told = once(expiring, 'error', 6000);
    const connectedAt = Date.now();
    const [[reason], [error]] = await Promise.all([gone, told]);
    const after = Date.now() - connectedAt;
    assert.equal(reason, 'io server disconnect');
    assert.deepEqual(error, { code: 'ACCESS_DENIED', message: 'Token expired' });
    assert.ok(after >= 1900 && after <= 5000, `disconnected ${after} ms after connecting with a 3 s token`);
    // The next attempt with the same token: connect_error "Token expired".
    const err = await connectError(srv.url, { auth: { token: expiringToken } });
    assert.equal(err.message, 'Token expired');

    await sleep(Math.max(0, 10000 - (Date.now() - connectedAt)));
    assert.equal(refreshing.connected, true, 'the refreshing client is still connected after 10 s');
    assert.ok(warnings.length >= 3, `${warnings.length} tokenExpiring in 10 s`);
    for (const w of warnings) {
      assert.equal(typeof w.expiresAt, 'number');
      assert.ok(w.expiresAt > w.at - 2000 && w.expiresAt < w.at + 4000, `expiresAt ${w.expiresAt} is Unix ms near ${w.at}`);
    }
    assert.ok(acks.length >= 3 && acks.every((a) => a.err === null && typeof a.result.expiresAt === 'number'), JSON.stringify(acks));
    await request(refreshing, 'sendMessage', { roomId: r, text: 'still here' });
  });

  it('refreshToken with another user\'s or an invalid token: ACCESS_DENIED, and the connection still ends at its exp', { timeout: 15000 }, async () => {
    const s = await connected(srv.url, { auth: { token: token('carol', { expiresIn: 3 }) } });
    const gone = once(s, 'disconnect', 6000);
    await expectError(request(s, 'refreshToken', token('mallory', { expiresIn: 3600 })), 'ACCESS_DENIED');
    const err = await new Promise((resolve) => s.emit('refreshToken', 'not-a-jwt', (e) => resolve(e)));
    assert.deepEqual(err, { code: 'ACCESS_DENIED', message: 'Invalid token' });
    const expired = await new Promise((resolve) => s.emit('refreshToken', require('../helpers/tokens').expiredToken('carol'), (e) => resolve(e)));
    assert.deepEqual(expired, { code: 'ACCESS_DENIED', message: 'Token expired' });
    // Hostile shapes: a token past 16 KiB is refused before any decoding, and a burst of
    // refreshes meets the connection's rate limit like any other request.
    const huge = await new Promise((resolve) => s.emit('refreshToken', 'x'.repeat(17 * 1024), (e) => resolve(e)));
    assert.deepEqual(huge, { code: 'INVALID_MESSAGE', message: 'refreshToken expects the new token (a string)' });
    const notText = await new Promise((resolve) => s.emit('refreshToken', { token: 42 }, (e) => resolve(e)));
    assert.equal(notText.code, 'INVALID_MESSAGE');
    const burst = await Promise.all(Array.from({ length: 60 }, () => new Promise((resolve) => s.emit('refreshToken', 'not-a-jwt', (e) => resolve(e && e.code)))));
    assert.ok(burst.includes('RATE_LIMITED'), `a burst of 60 refreshes is rate limited: ${[...new Set(burst)]}`);
    const [reason] = await gone;
    assert.equal(reason, 'io server disconnect');
  });

  it('an SSE stream ends with `event: token-expired` at its token\'s exp', { timeout: 15000 }, async () => {
    const stream = await rawStream(`${srv.url}/events?rooms=${room()}`, { headers: { Authorization: `Bearer ${token('dave', { expiresIn: 2 })}` } });
    assert.equal(stream.status, 200);
    const start = Date.now();
    await stream.waitFor(/event: token-expired/, 6000);
    await stream.done;
    const took = Date.now() - start;
    assert.ok(took <= 4500, `ended ${took} ms after opening with a 2 s token`);
    assert.match(stream.text, /event: token-expired\ndata: \{"message":"Token expired"\}/);
  });

  it('a Yjs connection closes with 4401 "Token expired" at its token\'s exp', { timeout: 15000 }, async () => {
    const ydoc = new Y.Doc();
    const p = new WebsocketProvider(`${srv.url.replace(/^http/, 'ws')}/yjs`, `id-doc-${process.pid}`, ydoc, {
      WebSocketPolyfill: WebSocket, disableBc: true, params: { token: token('erin', { expiresIn: 2 }) },
    });
    try {
      const closed = new Promise((resolve) => p.on('connection-close', (e) => e && resolve({ code: e.code, reason: String(e.reason) })));
      await new Promise((resolve) => p.once('sync', resolve));
      const start = Date.now();
      const c = await closed;
      assert.deepEqual(c, { code: 4401, reason: 'Token expired' });
      assert.ok(Date.now() - start <= 4500);
    } finally {
      p.destroy();
      ydoc.destroy();
    }
  });
});

describe('--allow-expired-connections keeps connections open past exp', () => {
  it('a 2 s token\'s connection is still open after 3.5 s, with no tokenExpiring', { timeout: 15000 }, async () => {
    const srv = await startServer({ args: ['--allow-expired-connections'] });
    try {
      const s = await connected(srv.url, { auth: { token: token('frank', { expiresIn: 2 }) } });
      let warned = false;
      s.on('tokenExpiring', () => { warned = true; });
      await sleep(3500);
      assert.equal(s.connected, true);
      assert.equal(warned, false);
    } finally {
      closeAll();
      await srv.stop();
    }
  });

  it('serve refuses plain http:// JWKS URLs to other hosts and a missing CA file', async () => {
    let r = await runCli(['serve', '--port', '0', '--jwks-url', 'http://idp.example.com/jwks']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /only allowed to a loopback host; use https:\/\//);
    r = await runCli(['serve', '--port', '0', '--jwks-url', 'https://idp.example.com/jwks', '--jwks-ca-file', '/nonexistent/ca.pem']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /jwks_ca_file \/nonexistent\/ca.pem/);
  });

  it('the TOML keys reach the engine: jwt_issuers, jwt_audiences and jwt_leeway from --config', { timeout: 15000 }, async () => {
    const fs = require('node:fs');
    const os = require('node:os');
    const path = require('node:path');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-id-toml-'));
    const file = path.join(dir, 'switchboard.toml');
    fs.writeFileSync(file, 'jwt_issuers = ["https://issuer.test/"]\njwt_audiences = ["chat"]\njwt_leeway = 301\n');
    try {
      const r = await runCli(['serve', '--port', '0', '--jwt-secret', 'test-secret-please-change', '--config', file]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /invalid jwt_leeway: must be at most 300 s/);
      fs.writeFileSync(file, 'jwt_issuers = ["https://issuer.test/"]\njwt_audiences = ["chat"]\n');
      const srv = await startServer({ args: ['--config', file] });
      try {
        const wrong = await connectError(srv.url, { auth: { token: token('a', { claims: { iss: 'https://issuer.test/', aud: 'other' } }) } });
        assert.equal(wrong.message, 'Invalid token audience');
        const s = await connected(srv.url, { auth: { token: token('a', { claims: { iss: 'https://issuer.test/', aud: 'chat' } }) } });
        assert.ok(s.connected);
      } finally {
        closeAll();
        await srv.stop();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('Node binding: the identity settings in camelCase (Fastify plugin)', () => {
  it('jwksUrl, jwksCaFile, jwtIssuers, jwtAudiences, jwtUserIdClaim and tokenExpiryWarning reach the engine', { timeout: 20000 }, async () => {
    const { startApp, closeApps } = require('../helpers/fastify');
    const idp = await startProvider();
    const key = signingKey('node-1', 'ES256');
    idp.keys = [key];
    try {
      const { url } = await startApp({
        jwksUrl: idp.url, jwksCaFile: idp.caFile,
        jwtIssuers: ['https://issuer.test/'], jwtAudiences: ['chat'], jwtUserIdClaim: 'uid',
        tokenExpiryWarning: 1,
      });
      const ok = claims('ignored', 3, { iss: 'https://issuer.test/', aud: 'chat', uid: 'u-42' });
      const s = await connected(url, { auth: { token: sign(key, ok) } });
      const members = once(s, 'roomMembers');
      await request(s, 'joinRoom', room());
      assert.equal((await members)[0].members[0].userId, 'u-42');
      // The warning comes about a second before the 3 s token's end.
      const [warning] = await once(s, 'tokenExpiring', 5000);
      assert.equal(warning.expiresAt, ok.exp * 1000);
      const err = await connectError(url, { auth: { token: sign(key, { ...ok, aud: 'other' }) } });
      assert.equal(err.message, 'Invalid token audience');
    } finally {
      closeAll();
      await closeApps();
      await idp.close();
    }
  });
});
