'use strict';
// Issue 12: TLS on the standalone server and on `engine.listen({ tls })`. Certificates are
// self-signed and made at test time (helpers/tls.js, openssl); clients are unmodified
// socket.io-client with the certificate as their CA (WebSocket only, long-polling only, and
// polling upgraded to WebSocket), the `eventsource` package over HTTPS, and raw sockets.

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');

const { Engine } = require('@switchboard/node');
const { SECRET, startServer, runCli } = require('../helpers/server');
const { token } = require('../helpers/tokens');
const {
  sleep, connect, connected, connectError, closeAll, once, request, recorder,
} = require('../helpers/client');
const { sseClient, refusedEventSource, closeAllStreams, eventsUrl } = require('../helpers/sse');
const {
  selfSignedCert, certificateFiles, removeCertificateFiles, fetchTrusting,
} = require('../helpers/tls');

const TRANSPORTS = [
  { name: 'WebSocket only', transports: ['websocket'], initial: 'websocket', final: 'websocket' },
  { name: 'HTTP long-polling only', transports: ['polling'], initial: 'polling', final: 'polling' },
  { name: 'polling upgraded to WebSocket', transports: ['polling', 'websocket'], initial: 'polling', final: 'websocket' },
];

let roomSeq = 0;
const room = (prefix = 'tls') => `${prefix}-${++roomSeq}`;
const auth = (sub) => ({ auth: { token: token(sub, { username: sub }) } });

/** Opens a socket on transport `tr` trusting `ca`, connected (and upgraded, if asked). */
async function openOn(tr, url, ca, sub) {
  const s = connect(url, { transports: tr.transports, ca, ...auth(sub) });
  const upgraded = tr.initial !== tr.final ? once(s.io.engine, 'upgrade', 5000) : null;
  await s.ready;
  if (upgraded) await upgraded;
  assert.equal(s.io.engine.transport.name, tr.final, 'transport after connect');
  return s;
}

/** Joins `roomId`, sends `text` and resolves the `message` event the sender gets back. */
async function roundTrip(socket, roomId, text) {
  const events = recorder(socket);
  await request(socket, 'joinRoom', roomId);
  const sent = await request(socket, 'sendMessage', { roomId, text });
  const [message] = await events.next('message', { filter: (m) => m.id === sent.id });
  return message;
}

/**
 * Sends a plain-HTTP request to `port` on a raw socket; resolves the bytes that came back
 * once the server ends the connection (reset or close).
 */
function plainHttp(port) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    const sock = net.connect(port, '127.0.0.1', () => {
      sock.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    });
    const timer = setTimeout(() => { sock.destroy(); reject(new Error('the server kept the plain-HTTP connection open for 5 s')); }, 5000);
    sock.on('data', (d) => chunks.push(d));
    sock.on('error', () => {}); // a reset is one way of dropping it
    sock.on('close', () => { clearTimeout(timer); resolve(Buffer.concat(chunks)); });
  });
}

/** Resolves when the server's stderr matches `re`; rejects after `ms`. */
async function stderrMatch(server, re, ms = 5000) {
  const deadline = Date.now() + ms;
  while (!re.test(server.stderr)) {
    if (Date.now() > deadline) throw new Error(`no ${re} on the server's stderr within ${ms} ms:\n${server.stderr}`);
    await sleep(20);
  }
}

describe('switchboard serve --tls-cert --tls-key', { timeout: 60000 }, () => {
  let cert;
  let server;

  before(async () => {
    cert = selfSignedCert();
    const files = certificateFiles(cert);
    server = await startServer({ args: ['--tls-cert', files.certFile, '--tls-key', files.keyFile] });
  });
  afterEach(() => { closeAll(); closeAllStreams(); });
  after(async () => {
    if (server) await server.stop();
    removeCertificateFiles();
  });

  it('prints an https:// URL', () => {
    assert.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  });

  for (const tr of TRANSPORTS) {
    it(`socket.io-client over ${tr.name} with the certificate as its CA: join, send, receive`, async () => {
      const s = await openOn(tr, server.url, cert.cert, 'alice');
      const roomId = room();
      const message = await roundTrip(s, roomId, `hello over ${tr.name}`);
      assert.equal(message.text, `hello over ${tr.name}`);
      assert.equal(message.userId, 'alice');
    });
  }

  it('SSE over HTTPS: an EventSource that trusts the certificate gets room messages', async () => {
    const roomId = room('sse');
    const es = await sseClient(eventsUrl(server.url, { rooms: roomId }), {
      token: token('dash'), fetch: fetchTrusting(cert.cert),
    });
    assert.ok(es.connected.data.clientId);
    const alice = await connected(server.url, { ca: cert.cert, ...auth('alice') });
    await roundTrip(alice, roomId, 'to the dashboard');
    const { data } = await es.log.next('message');
    assert.equal(data.text, 'to the dashboard');
  });

  it('clients that do not trust the certificate fail: socket.io-client on both transports, EventSource', async () => {
    const ws = await connectError(server.url, { transports: ['websocket'], timeout: 3000, ...auth('mallory') });
    assert.match(String(ws.description && ws.description.message), /self[- ]signed certificate/);
    const polling = await connectError(server.url, { transports: ['polling'], timeout: 3000, ...auth('mallory') });
    assert.equal(polling.message, 'xhr poll error');
    const refused = await refusedEventSource(eventsUrl(server.url), { token: token('mallory') });
    assert.match(refused.message, /self[- ]signed certificate/);
    assert.equal(refused.code, undefined, 'no HTTP status: the request never got an answer');
  });

  it('plain HTTP to the TLS port gets no answer, and an open wss client goes on', async () => {
    const alice = await connected(server.url, { ca: cert.cert, ...auth('alice') });
    const port = Number(new URL(server.url).port);
    const answer = await plainHttp(port);
    assert.equal(answer.length, 0, `plain HTTP got ${JSON.stringify(answer.toString('latin1'))}`);
    const viaHttp = await new Promise((resolve) => {
      const req = http.get({ host: '127.0.0.1', port, path: '/healthz', timeout: 5000 }, (res) => resolve(`answered ${res.statusCode}`));
      req.on('error', (e) => resolve(e.code || e.message));
      req.on('timeout', () => { req.destroy(); resolve('timeout'); });
    });
    assert.notEqual(viaHttp.slice(0, 8), 'answered', `node:http got ${viaHttp}`);

    const message = await roundTrip(alice, room(), 'still here');
    assert.equal(message.text, 'still here');
    const bob = await connected(server.url, { ca: cert.cert, ...auth('bob') });
    assert.ok(bob.id);
  });
});

describe('switchboard serve: SIGHUP reloads the certificate files', { timeout: 60000 }, () => {
  let server;
  after(async () => {
    closeAll();
    if (server) await server.stop();
    removeCertificateFiles();
  });

  it('new connections get the renewed certificate; open ones stay connected', async () => {
    const old = selfSignedCert({ type: 'ec' });
    const renewed = selfSignedCert({ type: 'ec' });
    const files = certificateFiles(old);
    server = await startServer({ args: ['--tls-cert', files.certFile, '--tls-key', files.keyFile] });
    const alice = await connected(server.url, { ca: old.cert, ...auth('alice') });

    fs.writeFileSync(files.certFile, renewed.cert);
    fs.writeFileSync(files.keyFile, renewed.key);
    server.proc.kill('SIGHUP');
    await stderrMatch(server, /TLS certificate reloaded/);

    const bob = await connected(server.url, { ca: renewed.cert, ...auth('bob') });
    assert.ok(bob.id);
    const err = await connectError(server.url, { ca: old.cert, timeout: 3000, ...auth('carol') });
    assert.ok(err instanceof Error);
    const message = await roundTrip(alice, room('hup'), 'after the reload');
    assert.equal(message.text, 'after the reload');
    assert.equal(server.exited, false);
  });
});

describe('switchboard serve: certificates that cannot be served stop start-up', { timeout: 60000 }, () => {
  let files;
  let otherKeyFile;
  before(() => {
    files = certificateFiles(selfSignedCert({ type: 'ec' }));
    otherKeyFile = certificateFiles(selfSignedCert({ type: 'ec' })).keyFile;
  });
  after(removeCertificateFiles);

  /** Runs serve with these TLS flags; asserts a non-zero exit with one error line; returns it. */
  async function refused(...flags) {
    const r = await runCli(['serve', '--port', '0', '--jwt-secret', SECRET, ...flags]);
    assert.notEqual(r.code, 0, `exit code; stdout: ${r.stdout}`);
    assert.doesNotMatch(r.stdout, /switchboard listening on/);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, `one line: ${r.stderr}`);
    return lines[0];
  }

  it('a key that is not the certificate\'s', async () => {
    const line = await refused('--tls-cert', files.certFile, '--tls-key', otherKeyFile);
    assert.equal(line, `switchboard: error: TLS key ${otherKeyFile} does not match the certificate ${files.certFile}`);
  });

  it('a missing file, and files given the wrong way round', async () => {
    const missing = `${files.dir}/missing.pem`;
    assert.match(await refused('--tls-cert', missing, '--tls-key', files.keyFile),
      new RegExp(`cannot read TLS certificate ${missing}: No such file`));
    assert.match(await refused('--tls-cert', files.keyFile, '--tls-key', files.certFile),
      new RegExp(`no certificate in ${files.keyFile}`));
  });

  it('a certificate without its key', async () => {
    assert.match(await refused('--tls-cert', files.certFile), /--tls-cert needs --tls-key/);
  });
});

describe('@switchboard/node: engine.listen({ tls: { cert, key } })', { timeout: 30000 }, () => {
  let engine;
  afterEach(closeAll);
  after(async () => { if (engine) await engine.close(); });

  it('serves wss and HTTPS with PEM contents; file names and a wrong key are refused', async () => {
    const cert = selfSignedCert({ type: 'ec' });
    const other = selfSignedCert({ type: 'ec' });
    engine = new Engine({ jwtSecret: SECRET });
    const port = await engine.listen({ host: '127.0.0.1', port: 0, tls: { cert: cert.cert, key: Buffer.from(cert.key) } });
    const url = `https://127.0.0.1:${port}`;
    const alice = await connected(url, { ca: cert.cert, ...auth('alice') });
    const message = await roundTrip(alice, room('node'), 'from Node');
    assert.equal(message.text, 'from Node');
    const health = await fetchTrusting(cert.cert)(`${url}/healthz`);
    assert.equal(health.status, 200);

    await assert.rejects(engine.listen({ port: 0, tls: { cert: '/etc/ssl/cert.pem', key: cert.key } }),
      { name: 'TypeError', message: /tls\.cert must be PEM contents/ });
    await assert.rejects(engine.listen({ port: 0, tls: { cert: cert.cert, key: other.key } }),
      { message: 'TLS key tls.key does not match the certificate tls.cert' });
  });
});
