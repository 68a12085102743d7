'use strict';
// Issue 10: the demo chat app that `make run` starts (examples/fastify-chat), in a real
// browser. `playwright-core` drives Debian's chromium (`make deps-browser` installs it): two
// browser contexts (two users, nothing shared) sign in, meet in a room they type, see each
// other in the members list, see the typing line, chat, share notes (Yjs), survive going
// offline (the page says "recovered" and shows what was missed), reload into the history, and
// hit the access and rate limits. Every check is on what a user sees: text in the DOM.
//
// Screenshots go to bindings-tests/node/test-output/ (gitignored). SB_DEMO_SCREENSHOT=path
// also writes the wide one there (how docs/demo.png is made). DEBUG_SERVER=1 forwards the
// app's output.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '../../..');
const APP_DIR = path.join(ROOT, 'examples/fastify-chat');
const OUTPUT = path.join(__dirname, '../test-output');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
  '--no-first-run',
];
const WAIT_MS = 10000;
const START_TIMEOUT_MS = 20000;

/** Starts `node server.js` on a free port with its own data dir; resolves {url, stop()}. */
function startDemo(extraEnv = {}) {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-demo-'));
  const env = { ...process.env, HOST: '127.0.0.1', PORT: '0', DATA_DIR: dataDir, JWT_SECRET: 'demo-browser-test-secret', ...extraEnv };
  delete env.REDIS_URL;
  const proc = spawn(process.execPath, [path.join(APP_DIR, 'server.js')], { cwd: APP_DIR, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    fs.rmSync(dataDir, { recursive: true, force: true });
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(`did not print its URL within ${START_TIMEOUT_MS} ms`), START_TIMEOUT_MS);
    const fail = (why) => {
      clearTimeout(timer);
      stop().finally(() => reject(new Error(`demo app ${why}\n${output}`)));
    };
    const onData = (chunk) => {
      output += chunk;
      if (process.env.DEBUG_SERVER) process.stderr.write(chunk);
      const match = /Switchboard demo chat: (http:\/\/[^\s]+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve({ url: match[1], stop, output: () => output });
      }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    exited.then(({ code, signal }) => fail(`exited (${code ?? signal})`));
  });
}

/** Waits until the element `selector` shows `text` (a string it contains, or a RegExp). */
async function sees(page, selector, text, timeout = WAIT_MS) {
  const pattern = typeof text === 'string' ? { source: null, text } : { source: text.source, text: null };
  try {
    await page.waitForFunction(([sel, p]) => {
      const node = document.querySelector(sel);
      if (!node) return false;
      const shown = node.textContent;
      return p.source ? new RegExp(p.source).test(shown) : shown.includes(p.text);
    }, [selector, pattern], { timeout, polling: 50 });
  } catch (error) {
    const shown = await page.locator(selector).first().textContent({ timeout: 1000 }).catch(() => '(missing)');
    throw new Error(`${page.who}: expected ${selector} to show ${text}, it shows ${JSON.stringify(shown)}`, { cause: error });
  }
}

/** Waits until the element `selector` no longer shows `text`. */
async function doesNotSee(page, selector, text, timeout = WAIT_MS) {
  await page.waitForFunction(([sel, t]) => !(document.querySelector(sel)?.textContent || '').includes(t), [selector, text], { timeout, polling: 50 })
    .catch((error) => { throw new Error(`${page.who}: ${selector} still shows ${text}`, { cause: error }); });
}

/** The notes textarea's value (a textarea's text is its value, not its textContent). */
function notesOf(page) {
  return page.locator('#notes').inputValue();
}

async function waitForNotes(page, check, what, timeout = WAIT_MS) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await notesOf(page);
    if (check(value)) return value;
    if (Date.now() > deadline) throw new Error(`${page.who}: notes never ${what}; they are ${JSON.stringify(value)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('demo chat app in chromium (examples/fastify-chat)', { timeout: 90000 }, () => {
  let demo;
  let browser;
  const pageErrors = [];

  before(async () => {
    if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: make deps-browser installs Debian's chromium`);
    if (!fs.existsSync(path.join(APP_DIR, 'node_modules/fastify'))) {
      throw new Error('examples/fastify-chat has no node_modules: make deps-demo (npm ci there)');
    }
    const { chromium } = require('playwright-core');
    fs.mkdirSync(OUTPUT, { recursive: true });
    demo = await startDemo();
    // launch() gives the browser a fresh temporary profile (user data dir) of its own.
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 30000 });
  });

  after(async () => {
    if (browser) await browser.close();
    if (demo) await demo.stop();
  });

  /** A new browser context (its own cookies, storage and network) with the page open. */
  async function openPage(who, viewport = { width: 1200, height: 680 }, url = demo.url) {
    const context = await browser.newContext({ viewport });
    const page = await context.newPage();
    page.who = who;
    page.setDefaultTimeout(WAIT_MS);
    page.on('pageerror', (error) => pageErrors.push(`${who}: ${error.message}`));
    page.on('console', (message) => {
      // The browser logs the requests that fail while the context is offline.
      if (message.type() === 'error' && !/ERR_INTERNET_DISCONNECTED|Failed to load resource|WebSocket connection/.test(message.text())) {
        pageErrors.push(`${who} console: ${message.text()}`);
      }
    });
    await page.goto(url);
    return { context, page };
  }

  async function signIn(page, name) {
    await sees(page, '#login-form', 'Sign in');
    await page.fill('#login-name', name);
    await page.click('#login-form button[type=submit]');
    await sees(page, '#status', 'connected');
    await sees(page, '#me-name', name);
  }

  async function send(page, text) {
    await page.fill('#message-input', text);
    await page.press('#message-input', 'Enter');
    await sees(page, '#messages', text);
  }

  test('two users chat, share notes, go offline and reload', async (t) => {
    const started = Date.now();
    const alice = await openPage('Alice');
    const bob = await openPage('Bob');
    const a = alice.page;
    const b = bob.page;

    await signIn(a, 'Alice');
    await signIn(b, 'Bob');
    // Both start in the lobby; the room list has the default rooms.
    await sees(a, '#room-title', '# lobby');
    for (const room of ['lobby', 'random', 'help', 'locked']) await sees(a, '#room-list', `# ${room}`);

    // A room of their own, typed into the room form.
    for (const page of [a, b]) {
      await page.fill('#room-input', 'launch-plans');
      await page.press('#room-input', 'Enter');
      await sees(page, '#room-title', '# launch-plans');
      await sees(page, '#room-list', '# launch-plans');
    }

    // Presence: each sees both in the members list.
    await sees(a, '#members', 'Bob');
    await sees(a, '#members', 'Alice (you)');
    await sees(b, '#members', 'Alice');
    await sees(a, '#member-count', '2 online');

    // Typing: Bob types, Alice sees the line; it goes when Bob sends.
    await b.click('#message-input');
    await b.keyboard.type('Hi Alice, ready for launch?');
    await sees(a, '#typing', 'Bob is typing…');
    await b.press('#message-input', 'Enter');
    await sees(a, '#messages', 'Hi Alice, ready for launch?');
    await sees(b, '#messages', 'Hi Alice, ready for launch?');
    await doesNotSee(a, '#typing', 'Bob is typing');

    await send(a, 'Almost! Notes are on the right.');
    await sees(b, '#messages', 'Almost! Notes are on the right.');

    // Shared notes: Alice writes, Bob sees it and adds a line, both end with the same text.
    await a.waitForSelector('#notes:not([disabled])');
    await b.waitForSelector('#notes:not([disabled])');
    await sees(a, '#notes-status', 'live');
    await a.click('#notes');
    await a.keyboard.type('Launch checklist\n- demo page\n');
    await waitForNotes(b, (v) => v.includes('- demo page'), 'showed Alice\'s lines');
    await b.click('#notes');
    await b.keyboard.press('Control+End');
    await b.keyboard.type('- browser test');
    await waitForNotes(a, (v) => v.includes('- browser test'), 'showed Bob\'s line');
    const expected = 'Launch checklist\n- demo page\n- browser test';
    assert.equal(await waitForNotes(a, (v) => v === expected, 'converged'), expected);
    assert.equal(await waitForNotes(b, (v) => v === expected, 'converged'), expected);
    // Awareness: Alice sees where Bob's caret is (end of line 3), Bob sees Alice.
    await sees(a, '#editors', /Bob\s*line 3, col 15/);
    await sees(b, '#editors', 'Alice');

    // Access refused: an inline error, and Bob stays in his room.
    await b.click('#room-list button:has-text("locked")');
    await sees(b, '#room-error', 'Access denied');
    await sees(b, '#room-title', '# launch-plans');

    // Offline and back: the page shows reconnecting, then recovered, and the message Bob
    // sent meanwhile.
    await alice.context.setOffline(true);
    await sees(a, '#status', 'reconnecting');
    await send(b, 'Sent while Alice was offline');
    await alice.context.setOffline(false);
    await sees(a, '#status', 'recovered', 15000);
    await sees(a, '#messages', 'Sent while Alice was offline');
    await sees(a, '#members', 'Bob');

    // Reload: Bob is still signed in, back in the room, and the history is there.
    await b.reload();
    await sees(b, '#status', 'connected');
    await sees(b, '#room-title', '# launch-plans');
    for (const text of ['Hi Alice, ready for launch?', 'Almost! Notes are on the right.', 'Sent while Alice was offline']) {
      await sees(b, '#messages', text);
    }
    await sees(b, '#members', 'Alice');
    assert.equal(await waitForNotes(b, (v) => v === expected, 'loaded after the reload'), expected);
    await doesNotSee(b, '#room-error', 'Access denied');

    // After the reload Bob types again, with his caret in the notes: the wide screenshot.
    await b.click('#notes');
    await b.keyboard.press('Control+End');
    await b.keyboard.press('ArrowUp');
    await sees(a, '#editors', /Bob\s*line 2, col/);
    await b.click('#message-input');
    await b.keyboard.type('Ship it');
    await sees(a, '#typing', 'Bob is typing…');
    await a.click('#message-input');
    const wide = path.join(OUTPUT, 'demo-alice.png');
    await a.screenshot({ path: wide });
    if (process.env.SB_DEMO_SCREENSHOT) fs.copyFileSync(wide, path.resolve(process.env.SB_DEMO_SCREENSHOT));

    // Narrow screen: everything is there, nothing sticks out sideways.
    await b.setViewportSize({ width: 390, height: 844 });
    await sees(b, '#members', 'Alice');
    const overflow = await b.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page is ${overflow}px wider than a 390px screen`);
    await b.screenshot({ path: path.join(OUTPUT, 'demo-bob-narrow.png'), fullPage: true });

    // Rate limit: a burst far over 20 messages/s with bursts of 40 gets an inline error.
    await b.evaluate(() => {
      const input = document.getElementById('message-input');
      const form = document.getElementById('composer');
      for (let i = 0; i < 70; i++) {
        input.value = `burst ${i}`;
        form.requestSubmit();
      }
    });
    await sees(b, '#send-error', 'Rate limited');

    assert.deepEqual(pageErrors, [], 'no page errors');
    await alice.context.close();
    await bob.context.close();
    t.diagnostic(`${((Date.now() - started) / 1000).toFixed(1)} s in the browser`);
  });

  test('tokens that end while the page is open are signed again: chat and notes stay live', async () => {
    // 5 s tokens: the server warns each connection before its token ends and closes the
    // notes at the end; the page gets a new token (getToken) for both.
    const short = await startDemo({ TOKEN_TTL: '5s' });
    const carol = await openPage('Carol', undefined, short.url);
    const c = carol.page;
    let dave = null;
    try {
      await signIn(c, 'Carol');
      await c.waitForSelector('#notes:not([disabled])');
      await sees(c, '#notes-status', 'live');
      await c.waitForTimeout(12000); // past two token lifetimes
      await sees(c, '#status', 'connected');
      await send(c, 'Still here after my first token ended');
      await sees(c, '#notes-status', 'live');
      await c.click('#notes');
      await c.keyboard.type('written with a later token');
      // Another user sees the message and the notes (edits made while the notes reconnect
      // with a new token sync once they are back).
      dave = await openPage('Dave', undefined, short.url);
      await signIn(dave.page, 'Dave');
      await sees(dave.page, '#messages', 'Still here after my first token ended');
      const text = 'written with a later token';
      assert.equal(await waitForNotes(dave.page, (v) => v === text, 'showed Carol\'s line', 20000), text);
      assert.deepEqual(pageErrors, [], 'no page errors');
    } finally {
      if (dave) await dave.context.close();
      await carol.context.close();
      await short.stop();
    }
  });
});
