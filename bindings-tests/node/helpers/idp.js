'use strict';
// A local identity provider for the tests: an HTTPS server (self-signed certificate, trusted
// by the engine through --jwks-ca-file) publishing a JWKS whose keys the test rotates, takes
// down, and whose requests it counts; and tokens signed by hand with node:crypto for every
// algorithm the engine accepts (RS256, PS256, ES256, ES384, EdDSA).

const { execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const https = require('node:https');
const os = require('node:os');
const path = require('node:path');
const { certificateFiles } = require('./tls');

/**
 * A self-signed P-256 certificate for 127.0.0.1/localhost that is marked as no CA: the
 * engine's TLS client (webpki) trusts it as an anchor for itself, where a certificate with
 * `CA:TRUE` (openssl's default) serving as its own end entity is refused (CaUsedAsEndEntity),
 * as it should be for a real private CA. Resolves {key, cert} (PEM).
 */
function leafCert() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-idp-'));
  try {
    const key = path.join(dir, 'key.pem');
    const cert = path.join(dir, 'cert.pem');
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-subj', '/CN=localhost', '-days', '1',
      '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '-addext', 'basicConstraints=critical,CA:FALSE',
      '-keyout', key, '-out', cert,
    ], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 20000 });
    return { key: fs.readFileSync(key, 'utf8'), cert: fs.readFileSync(cert, 'utf8') };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const CURVES = { ES256: 'prime256v1', ES384: 'secp384r1' };

/** A signing key of `alg` with id `kid`: `{kid, alg, privateKey, jwk}`. */
function signingKey(kid, alg = 'RS256') {
  let pair;
  if (alg.startsWith('RS') || alg.startsWith('PS')) pair = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  else if (alg === 'EdDSA') pair = crypto.generateKeyPairSync('ed25519');
  else pair = crypto.generateKeyPairSync('ec', { namedCurve: CURVES[alg] });
  const jwk = { ...pair.publicKey.export({ format: 'jwk' }), kid, use: 'sig' };
  return { kid, alg, privateKey: pair.privateKey, jwk };
}

const b64url = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/** A JWT signed with `key` (header `alg` and `kid` from it unless `header` says otherwise). */
function sign(key, claims, { header = {} } = {}) {
  const head = b64url({ alg: key.alg, typ: 'JWT', kid: key.kid, ...header });
  const body = b64url(claims);
  const data = Buffer.from(`${head}.${body}`);
  const hash = { RS256: 'sha256', PS256: 'sha256', ES256: 'sha256', ES384: 'sha384', EdDSA: null }[key.alg];
  let opts = key.privateKey;
  if (key.alg.startsWith('PS')) opts = { key: key.privateKey, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 };
  if (key.alg.startsWith('ES')) opts = { key: key.privateKey, dsaEncoding: 'ieee-p1363' };
  const sig = crypto.sign(hash, data, opts).toString('base64url');
  return `${head}.${body}.${sig}`;
}

/** Claims for user `sub` expiring in `ttl` seconds, plus `extra`. */
function claims(sub, ttl = 3600, extra = {}) {
  const now = Math.floor(Date.now() / 1000);
  return { sub, iat: now, exp: now + ttl, ...extra };
}

/**
 * Starts the provider; resolves `{url, caFile, keys, requests(), down(bool), close()}`.
 * `keys` is the published list (change it to rotate).
 */
async function startProvider({ cacheControl = 'max-age=600' } = {}) {
  const pem = leafCert();
  const tls = certificateFiles(pem);
  const state = { keys: [], requests: 0, down: false };
  const server = https.createServer({ cert: pem.cert, key: pem.key }, (req, res) => {
    state.requests += 1;
    if (state.down) {
      res.writeHead(503, { 'content-type': 'text/plain' });
      res.end('down for maintenance');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': cacheControl });
    res.end(JSON.stringify({ keys: state.keys.map((k) => k.jwk) }));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    url: `https://127.0.0.1:${port}/.well-known/jwks.json`,
    caFile: tls.certFile,
    get keys() { return state.keys; },
    set keys(list) { state.keys = list; },
    requests: () => state.requests,
    down: (d) => { state.down = d; },
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); }),
  };
}

module.exports = { signingKey, sign, claims, startProvider };
