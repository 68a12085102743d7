'use strict';
// JWTs for the tests: valid ones and every kind the server must refuse.

const crypto = require('node:crypto');
const jwt = require('jsonwebtoken');
const { SECRET } = require('./server');

/**
 * A signed token for user `sub`. HS256 with SECRET unless told otherwise.
 * `rooms` and `username` are left out of the claims when undefined.
 * `secret` may be a PEM private key (with algorithm RS256/ES256).
 */
function token(sub, { username, rooms, expiresIn = '1h', secret = SECRET, algorithm = 'HS256', claims = {} } = {}) {
  const payload = { ...claims };
  if (sub !== undefined) payload.sub = sub;
  if (username !== undefined) payload.username = username;
  if (rooms !== undefined) payload.rooms = rooms;
  return jwt.sign(payload, secret, { algorithm, expiresIn });
}

/** Signed with the right secret, expired an hour ago (well past any clock leeway). */
function expiredToken(sub = 'alice', { secret = SECRET } = {}) {
  const now = Math.floor(Date.now() / 1000);
  return jwt.sign({ sub, username: sub, iat: now - 7200, exp: now - 3600 }, secret, { algorithm: 'HS256' });
}

/** Signed with a secret the server does not know. */
function wrongSecretToken(sub = 'alice') {
  return token(sub, { secret: 'not-the-' + SECRET });
}

function b64url(obj) {
  return Buffer.from(JSON.stringify(obj)).toString('base64url');
}

/** `{"alg":"none"}` with an empty signature, crafted by hand. */
function noneToken(sub = 'alice') {
  const now = Math.floor(Date.now() / 1000);
  return `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ sub, username: sub, iat: now, exp: now + 3600 })}.`;
}

/** A fresh RSA key pair as PEM strings (SPKI public, PKCS#8 private). */
function rsaKeyPair() {
  return crypto.generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
}

/** An RS256 token signed with `privateKey` (PEM). */
function rs256Token(sub, privateKey, opts = {}) {
  return token(sub, { ...opts, secret: privateKey, algorithm: 'RS256' });
}

module.exports = { token, expiredToken, wrongSecretToken, noneToken, rsaKeyPair, rs256Token, SECRET };

/** An HS256 token computed by hand with `key` (e.g. a public-key PEM: the algorithm-confusion attack). */
function hmacToken(payload, key) {
  const now = Math.floor(Date.now() / 1000);
  const head = b64url({ alg: 'HS256', typ: 'JWT' });
  const body = b64url({ iat: now, exp: now + 3600, ...payload });
  const sig = crypto.createHmac('sha256', key).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

module.exports.hmacToken = hmacToken;
