'use strict';
// TLS for the tests: self-signed certificates made at test time with the openssl command
// (`make deps-node` installs it when it is missing), written to files for `switchboard serve
// --tls-cert/--tls-key`, and a `fetch` that trusts a given CA (for the `eventsource` package,
// whose `fetch` option is the way to reach an HTTPS server with a private CA).

const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const https = require('node:https');
const os = require('node:os');
const path = require('node:path');
const { Readable } = require('node:stream');

/** Every directory made by `certificateFiles`, removed by `removeCertificateFiles()`. */
const dirs = new Set();

/**
 * A self-signed certificate for CN=localhost with IP:127.0.0.1 and DNS:localhost as subject
 * alternative names. `type` is `rsa` (2048 bits) or `ec` (P-256). Resolves {key, cert} (PEM
 * strings).
 */
function selfSignedCert({ type = 'rsa' } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-cert-'));
  try {
    const key = path.join(dir, 'key.pem');
    const cert = path.join(dir, 'cert.pem');
    const newkey = type === 'ec'
      ? ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1']
      : ['-newkey', 'rsa:2048'];
    execFileSync('openssl', [
      'req', '-x509', ...newkey, '-nodes', '-subj', '/CN=localhost', '-days', '1',
      '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '-keyout', key, '-out', cert,
    ], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 20000 });
    return { key: fs.readFileSync(key, 'utf8'), cert: fs.readFileSync(cert, 'utf8') };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Writes `{cert, key}` (PEM) to `cert.pem` and `key.pem` in a new directory; resolves
 * {dir, certFile, keyFile}. Writing again to the same files is how a renewal looks.
 */
function certificateFiles({ cert, key }) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-tls-'));
  dirs.add(dir);
  const certFile = path.join(dir, 'cert.pem');
  const keyFile = path.join(dir, 'key.pem');
  fs.writeFileSync(certFile, cert);
  fs.writeFileSync(keyFile, key, { mode: 0o600 });
  return { dir, certFile, keyFile };
}

/** Removes every directory `certificateFiles` made. */
function removeCertificateFiles() {
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
  dirs.clear();
}

/**
 * A WHATWG `fetch` over node:https that trusts `ca` (PEM); enough for `new EventSource(url,
 * { fetch })` (GET, headers, a streamed body, an abort signal).
 */
function fetchTrusting(ca) {
  return (url, init = {}) => new Promise((resolve, reject) => {
    const req = https.request(String(url), {
      method: init.method || 'GET',
      headers: init.headers,
      ca,
      signal: init.signal,
    }, (res) => {
      const flat = Object.entries(res.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : v]);
      resolve(new Response(Readable.toWeb(res), { status: res.statusCode, headers: flat }));
    });
    req.once('error', reject);
    req.end();
  });
}

module.exports = { selfSignedCert, certificateFiles, removeCertificateFiles, fetchTrusting };
