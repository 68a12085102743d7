'use strict';
// Issue 3: the wire contract of DESIGN.md, row by row, with unmodified socket.io-client:
// rooms and access, presence per user, messages, typing, history, signaling, recovery.
// Rate limits, slow readers and malformed input are in chat-limits.test.js.

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const { startServer } = require('../helpers/server');
const { token } = require('../helpers/tokens');
const {
  sleep, connect, userSocket, closeAll, once, noEvent, request, expectError, recorder,
} = require('../helpers/client');

const ISO_MS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const MESSAGE_KEYS = ['id', 'roomId', 'text', 'timestamp', 'userId', 'username'];

let roomSeq = 0;
/** A room name no other test uses. */
const room = (prefix = 'room') => `${prefix}-${++roomSeq}`;

/** A connected user with an event recorder; joins `roomId` (and consumes its roomMembers) if given. */
async function user(url, sub, username, roomId, opts = {}) {
  const s = await userSocket(url, sub, { username, ...opts });
  const rec = recorder(s);
  if (roomId) {
    await request(s, 'joinRoom', roomId);
    await rec.next('roomMembers', { filter: (m) => m.roomId === roomId });
  }
  return { s, rec };
}

const byUser = (a, b) => (a.userId < b.userId ? -1 : a.userId > b.userId ? 1 : 0);

function assertMessage(m, { roomId, text, userId, username }) {
  assert.ok(m && typeof m === 'object', `message payload is an object: ${JSON.stringify(m)}`);
  assert.deepEqual(Object.keys(m).sort(), MESSAGE_KEYS, `message fields: ${JSON.stringify(m)}`);
  assert.equal(m.roomId, roomId);
  assert.equal(m.text, text);
  assert.equal(m.userId, userId);
  assert.equal(m.username, username);
  assert.equal(typeof m.id, 'string');
  assert.ok(m.id.length > 0, 'non-empty id');
  assert.match(m.timestamp, ISO_MS);
  const skew = Math.abs(Date.parse(m.timestamp) - Date.now());
  assert.ok(skew < 10000, `timestamp ${m.timestamp} is about now (off by ${skew} ms)`);
}

// ---------------------------------------------------------------------------------------------

describe('contract (default server)', () => {
  let srv;
  before(async () => { srv = await startServer(); });
  after(() => srv && srv.stop());
  afterEach(closeAll);

  // ---- joinRoom / leaveRoom / presence -------------------------------------------------------

  describe('joinRoom, leaveRoom and presence', () => {
    it('roomMembers to the joiner, userJoined to the others (not to the joiner)', async () => {
      const r = room();
      const alice = await user(srv.url, 'alice', 'Alice');
      await request(alice.s, 'joinRoom', r);
      const [m1] = await alice.rec.next('roomMembers');
      assert.deepEqual(m1, { roomId: r, members: [{ userId: 'alice', username: 'Alice' }] });

      const bob = await user(srv.url, 'bob', 'Bob');
      const bobSelf = noEvent(bob.s, 'userJoined', 400);
      const result = await request(bob.s, 'joinRoom', r);
      assert.ok(result === undefined || result === null, `joinRoom acks cb(null): ${JSON.stringify(result)}`);
      const [m2] = await bob.rec.next('roomMembers');
      assert.equal(m2.roomId, r);
      assert.deepEqual([...m2.members].sort(byUser), [
        { userId: 'alice', username: 'Alice' },
        { userId: 'bob', username: 'Bob' },
      ]);
      const [joined] = await alice.rec.next('userJoined');
      assert.deepEqual(joined, { roomId: r, userId: 'bob', username: 'Bob' });
      await bobSelf;
    });

    it('two tabs of one user: one userJoined; userLeft only when the last tab leaves', async () => {
      const r = room();
      const bob = await user(srv.url, 'bob', 'Bob', r);
      const tab1 = await user(srv.url, 'alice', 'Alice');
      const tab2 = await user(srv.url, 'alice', 'Alice');

      await request(tab1.s, 'joinRoom', r);
      const [j] = await bob.rec.next('userJoined');
      assert.deepEqual(j, { roomId: r, userId: 'alice', username: 'Alice' });

      const noSecondJoin = noEvent(bob.s, 'userJoined', 500);
      const noJoinToTab1 = noEvent(tab1.s, 'userJoined', 500);
      await request(tab2.s, 'joinRoom', r);
      const [members] = await tab2.rec.next('roomMembers');
      assert.deepEqual([...members.members].sort(byUser), [
        { userId: 'alice', username: 'Alice' },
        { userId: 'bob', username: 'Bob' },
      ], 'a user with two tabs is listed once');
      await noSecondJoin;
      await noJoinToTab1;

      const noLeftYet = noEvent(bob.s, 'userLeft', 500);
      await request(tab1.s, 'leaveRoom', r);
      await noLeftYet;

      await request(tab2.s, 'leaveRoom', r);
      const [left] = await bob.rec.next('userLeft');
      assert.deepEqual(left, { roomId: r, userId: 'alice', username: 'Alice' });
      assert.equal(bob.rec.all('userJoined').length, 1, 'exactly one userJoined for alice');
      assert.equal(bob.rec.all('userLeft').length, 1, 'exactly one userLeft for alice');
    });

    it('two tabs: closing one tab is silent, closing the last one -> userLeft', async () => {
      const r = room();
      const bob = await user(srv.url, 'bob', 'Bob', r);
      const tab1 = await user(srv.url, 'carol', 'Carol', r);
      const tab2 = await user(srv.url, 'carol', 'Carol', r);
      await bob.rec.next('userJoined');

      const noLeft = noEvent(bob.s, 'userLeft', 500);
      tab1.s.close();
      await noLeft;
      tab2.s.close();
      const [left] = await bob.rec.next('userLeft');
      assert.deepEqual(left, { roomId: r, userId: 'carol', username: 'Carol' });
    });

    it('joining twice is a success no-op (no second userJoined)', async () => {
      const r = room();
      const alice = await user(srv.url, 'alice', 'Alice', r);
      const bob = await user(srv.url, 'bob', 'Bob', r);
      await alice.rec.next('userJoined');
      const none = noEvent(alice.s, 'userJoined', 500);
      const again = await request(bob.s, 'joinRoom', r);
      assert.ok(again === undefined || again === null, `second joinRoom acks cb(null): ${JSON.stringify(again)}`);
      await none;
      // still a member exactly once: one leave makes one userLeft
      await request(bob.s, 'leaveRoom', r);
      await alice.rec.next('userLeft');
      await sleep(200);
      assert.equal(alice.rec.all('userLeft').length, 1);
    });

    it('leaveRoom -> userLeft to the others; a later joiner no longer sees the leaver', async () => {
      const r = room();
      const alice = await user(srv.url, 'alice', 'Alice', r);
      const bob = await user(srv.url, 'bob', 'Bob', r);
      await alice.rec.next('userJoined');
      const result = await request(bob.s, 'leaveRoom', r);
      assert.ok(result === undefined || result === null, `leaveRoom acks cb(null): ${JSON.stringify(result)}`);
      const [left] = await alice.rec.next('userLeft');
      assert.deepEqual(left, { roomId: r, userId: 'bob', username: 'Bob' });

      const carol = await user(srv.url, 'carol', 'Carol');
      await request(carol.s, 'joinRoom', r);
      const [m] = await carol.rec.next('roomMembers');
      assert.deepEqual([...m.members].sort(byUser), [
        { userId: 'alice', username: 'Alice' },
        { userId: 'carol', username: 'Carol' },
      ]);
      // and bob no longer gets the room's traffic
      const silent = noEvent(bob.s, 'userJoined', 400);
      await silent;
    });

    it('disconnect of the last connection -> userLeft to the others', async () => {
      const r = room();
      const alice = await user(srv.url, 'alice', 'Alice', r);
      const bob = await user(srv.url, 'bob', 'Bob', r);
      await alice.rec.next('userJoined');
      bob.s.close();
      const [left] = await alice.rec.next('userLeft');
      assert.deepEqual(left, { roomId: r, userId: 'bob', username: 'Bob' });
    });

    it('leaveRoom of a room one is not in: success or NOT_IN_ROOM, never a hang', async () => {
      const alice = await user(srv.url, 'alice', 'Alice');
      try {
        await request(alice.s, 'leaveRoom', room());
      } catch (e) {
        await expectError(Promise.reject(e), 'NOT_IN_ROOM');
      }
    });

    it('username falls back to sub when the token has none', async () => {
      const r = room();
      const anon = await user(srv.url, 'anon-42', undefined);
      await request(anon.s, 'joinRoom', r);
      const [m] = await anon.rec.next('roomMembers');
      assert.deepEqual(m.members, [{ userId: 'anon-42', username: 'anon-42' }]);
      await request(anon.s, 'sendMessage', { roomId: r, text: 'hi' });
      const [msg] = await anon.rec.next('message');
      assert.equal(msg.username, 'anon-42');
    });
  });

  // ---- access ---------------------------------------------------------------------------------

  describe('room access (open policy)', () => {
    it("another user's personal room -> ACCESS_DENIED", async () => {
      const alice = await user(srv.url, 'alice', 'Alice');
      await expectError(request(alice.s, 'joinRoom', 'user:bob'), 'ACCESS_DENIED');
      assert.equal(alice.rec.all('roomMembers').length, 0, 'no roomMembers for a refused join');
    });

    it("a rooms claim ['team-*', 'lobby'] allows team-a and lobby, refuses other rooms", async () => {
      const s = await userSocket(srv.url, 'claimed', { username: 'Claimed', rooms: ['team-*', 'lobby'] });
      await request(s, 'joinRoom', 'team-a');
      await request(s, 'joinRoom', 'team-b/sub');
      await request(s, 'joinRoom', 'lobby');
      for (const r of ['other', 'lobby-2', 'team', 'xteam-a']) {
        await expectError(request(s, 'joinRoom', r), 'ACCESS_DENIED', r);
      }
    });

    it('a refused join leaves no trace: no userJoined to the room, sendMessage -> NOT_IN_ROOM', async () => {
      const bob = await user(srv.url, 'bob', 'Bob', 'other-room-for-claims');
      const s = await userSocket(srv.url, 'claimed2', { rooms: ['team-*'] });
      const none = noEvent(bob.s, 'userJoined', 400);
      await expectError(request(s, 'joinRoom', 'other-room-for-claims'), 'ACCESS_DENIED');
      await none;
      await expectError(request(s, 'sendMessage', { roomId: 'other-room-for-claims', text: 'x' }), 'NOT_IN_ROOM');
    });

    const invalid = [
      ['an empty name', ''],
      ['a 129-character name', 'x'.repeat(129)],
      ['a name with a newline', 'a\nb'],
      ['a name with a NUL', 'a\u0000b'],
      ['a name with a tab', 'a\tb'],
      ['a number', 42],
      ['an object', { roomId: 'x' }],
      ['an array', ['x']],
      ['null', null],
      ['a boolean', true],
    ];
    for (const [what, value] of invalid) {
      it(`joinRoom with ${what} -> INVALID_ROOM`, async () => {
        const alice = await user(srv.url, 'alice', 'Alice');
        await expectError(request(alice.s, 'joinRoom', value), 'INVALID_ROOM');
      });
    }

    it('joinRoom with no argument at all (only the callback) -> INVALID_ROOM', async () => {
      const alice = await user(srv.url, 'alice', 'Alice');
      await expectError(request(alice.s, 'joinRoom'), 'INVALID_ROOM');
    });

    it('128 characters is fine, counted in characters (128 × "é" too)', async () => {
      const alice = await user(srv.url, 'alice', 'Alice');
      await request(alice.s, 'joinRoom', 'y'.repeat(128));
      await request(alice.s, 'joinRoom', 'é'.repeat(128));
      await request(alice.s, 'joinRoom', 'café ☕ room');
    });
  });

  // ---- sendMessage ----------------------------------------------------------------------------

  describe('sendMessage', () => {
    it('reaches every member including the sender; ack {id, timestamp} matches', async () => {
      const r = room();
      const alice = await user(srv.url, 'alice', 'Alice', r);
      const bob = await user(srv.url, 'bob', 'Bob', r);
      const ack = await request(alice.s, 'sendMessage', { roomId: r, text: 'hello, room' });
      assert.deepEqual(Object.keys(ack).sort(), ['id', 'timestamp'], `ack result: ${JSON.stringify(ack)}`);
      const [toBob] = await bob.rec.next('message');
      const [toAlice] = await alice.rec.next('message');
      const expected = { roomId: r, text: 'hello, room', userId: 'alice', username: 'Alice' };
      assertMessage(toBob, expected);
      assertMessage(toAlice, expected);
      assert.deepEqual(toAlice, toBob);
      assert.equal(toBob.id, ack.id);
      assert.equal(toBob.timestamp, ack.timestamp);
    });

    it('the message is emitted before the ack (the sender holds it when the ack arrives)', async () => {
      const r = room();
      const alice = await user(srv.url, 'alice', 'Alice', r);
      const ack = await request(alice.s, 'sendMessage', { roomId: r, text: 'ordering' });
      assert.equal(alice.rec.all('message', (m) => m.id === ack.id).length, 1);
    });

    it('20 rapid messages: unique ids, increasing, same order for every member', async () => {
      const r = room();
      const alice = await user(srv.url, 'alice', 'Alice', r);
      const bob = await user(srv.url, 'bob', 'Bob', r);
      const acks = await Promise.all(Array.from({ length: 20 }, (_, i) =>
        request(alice.s, 'sendMessage', { roomId: r, text: `m${i}` })));
      const got = (await bob.rec.count('message', 20)).map(([m]) => m);
      assert.deepEqual(got.map((m) => m.text), Array.from({ length: 20 }, (_, i) => `m${i}`), 'delivered in send order');
      const ids = got.map((m) => m.id);
      assert.equal(new Set(ids).size, 20, 'ids are unique');
      for (let i = 1; i < ids.length; i++) {
        assert.ok(ids[i - 1] < ids[i], `ids increase lexicographically: ${ids[i - 1]} !< ${ids[i]}`);
      }
      assert.deepEqual(acks.map((a) => a.id), ids, 'ack ids match delivered ids');
      const mine = (await alice.rec.count('message', 20)).map(([m]) => m.id);
      assert.deepEqual(mine, ids, 'the sender sees the same order');
    });

    it('timestamps are ISO-8601 UTC with milliseconds', async () => {
      const r = room();
      const alice = await user(srv.url, 'alice', 'Alice', r);
      const before = Date.now();
      const ack = await request(alice.s, 'sendMessage', { roomId: r, text: 'tick' });
      assert.match(ack.timestamp, ISO_MS);
      const t = Date.parse(ack.timestamp);
      assert.ok(t >= before - 2000 && t <= Date.now() + 2000, `timestamp ${ack.timestamp} near now`);
    });

    it('NOT_IN_ROOM before joining and after leaving', async () => {
      const r = room();
      const bob = await user(srv.url, 'bob', 'Bob', r);
      const alice = await user(srv.url, 'alice', 'Alice');
      const silent = noEvent(bob.s, 'message', 500);
      await expectError(request(alice.s, 'sendMessage', { roomId: r, text: 'let me in' }), 'NOT_IN_ROOM');
      await request(alice.s, 'joinRoom', r);
      await request(alice.s, 'leaveRoom', r);
      await expectError(request(alice.s, 'sendMessage', { roomId: r, text: 'gone' }), 'NOT_IN_ROOM');
      await silent;
    });

    const bad = (r) => [
      ['empty text', { roomId: r, text: '' }, 'INVALID_MESSAGE'],
      ['a number as text', { roomId: r, text: 42 }, 'INVALID_MESSAGE'],
      ['an object as text', { roomId: r, text: { t: 'x' } }, 'INVALID_MESSAGE'],
      ['null text', { roomId: r, text: null }, 'INVALID_MESSAGE'],
      ['missing text', { roomId: r }, 'INVALID_MESSAGE'],
      ['4001 characters', { roomId: r, text: 'x'.repeat(4001) }, 'INVALID_MESSAGE'],
      ['a string instead of an object', 'hello', 'INVALID_MESSAGE'],
      ['a number instead of an object', 7, 'INVALID_MESSAGE'],
      ['an array instead of an object', [r, 'hello'], 'INVALID_MESSAGE'],
      ['null instead of an object', null, 'INVALID_MESSAGE'],
      ['a missing roomId', { text: 'hello' }, ['INVALID_ROOM', 'INVALID_MESSAGE']],
      ['a numeric roomId', { roomId: 5, text: 'hello' }, ['INVALID_ROOM', 'INVALID_MESSAGE']],
    ];
    it('INVALID_MESSAGE / INVALID_ROOM for bad arguments; nothing is delivered', async () => {
      const r = room();
      const alice = await user(srv.url, 'alice', 'Alice', r);
      const bob = await user(srv.url, 'bob', 'Bob', r);
      for (const [what, arg, code] of bad(r)) {
        await expectError(request(alice.s, 'sendMessage', arg), code, what);
      }
      await expectError(request(alice.s, 'sendMessage'), ['INVALID_MESSAGE', 'INVALID_ROOM'], 'no argument');
      await sleep(200);
      assert.equal(bob.rec.all('message').length, 0, 'no invalid message was delivered');
      assert.equal(alice.rec.all('message').length, 0, 'no invalid message was delivered to the sender');
    });

    it('4000 characters is fine, counted in characters (4000 × "é")', async () => {
      const r = room();
      const alice = await user(srv.url, 'alice', 'Alice', r);
      await request(alice.s, 'sendMessage', { roomId: r, text: 'x'.repeat(4000) });
      await request(alice.s, 'sendMessage', { roomId: r, text: 'é'.repeat(4000) });
      const [[a], [b]] = await alice.rec.count('message', 2);
      assert.equal(a.text.length, 4000);
      assert.equal(b.text, 'é'.repeat(4000));
    });

    it('unicode, quotes and control characters in text round-trip exactly', async () => {
      const r = room();
      const alice = await user(srv.url, 'alice', 'Alice', r);
      const text = 'emoji 😀, "quotes", back\\slash, tab\t, nl\n, </script>, \u2028';
      await request(alice.s, 'sendMessage', { roomId: r, text });
      const [m] = await alice.rec.next('message');
      assert.equal(m.text, text);
    });

    it('a non-member (and a member of another room) does not receive the message', async () => {
      const r = room();
      const other = room();
      const alice = await user(srv.url, 'alice', 'Alice', r);
      const outsider = await user(srv.url, 'carol', 'Carol');
      const elsewhere = await user(srv.url, 'dave', 'Dave', other);
      const n1 = noEvent(outsider.s, 'message', 500);
      const n2 = noEvent(elsewhere.s, 'message', 500);
      await request(alice.s, 'sendMessage', { roomId: r, text: 'members only' });
      await n1;
      await n2;
    });
  });

  // ---- typing -----------------------------------------------------------------------------------

  describe('typing', () => {
    const typing = (roomId, isTyping, userId = 'alice', username = 'Alice') => ({ roomId, userId, username, isTyping });

    it('startTyping -> typing true to the others, not to the typist; again -> nothing; stopTyping -> false', async () => {
      const r = room();
      const alice = await user(srv.url, 'alice', 'Alice', r);
      const bob = await user(srv.url, 'bob', 'Bob', r);
      const notToSelf = noEvent(alice.s, 'typing', 1200);

      alice.s.emit('startTyping', r);
      const [on] = await bob.rec.next('typing');
      assert.deepEqual(on, typing(r, true));

      const noRepeat = noEvent(bob.s, 'typing', 400);
      alice.s.emit('startTyping', r);
      await noRepeat;

      alice.s.emit('stopTyping', r);
      const [off] = await bob.rec.next('typing');
      assert.deepEqual(off, typing(r, false));
      const noRepeatStop = noEvent(bob.s, 'typing', 300);
      alice.s.emit('stopTyping', r);
      await noRepeatStop;
      await notToSelf;
    });

    it('stopTyping without startTyping emits nothing; typing in a room one is not in emits nothing', async () => {
      const r = room();
      const bob = await user(srv.url, 'bob', 'Bob', r);
      const alice = await user(srv.url, 'alice', 'Alice', r);
      const carol = await user(srv.url, 'carol', 'Carol');
      const none = noEvent(bob.s, 'typing', 500);
      alice.s.emit('stopTyping', r);
      carol.s.emit('startTyping', r);
      await none;
    });

    it('typing is per user: a second tab starting to type emits nothing', async () => {
      const r = room();
      const bob = await user(srv.url, 'bob', 'Bob', r);
      const tab1 = await user(srv.url, 'alice', 'Alice', r);
      const tab2 = await user(srv.url, 'alice', 'Alice', r);
      tab1.s.emit('startTyping', r);
      await bob.rec.next('typing', { filter: (t) => t.isTyping === true });
      const none = noEvent(bob.s, 'typing', 400);
      tab2.s.emit('startTyping', r);
      await none;
    });

    it('leaving the room while typing emits typing false', async () => {
      const r = room();
      const alice = await user(srv.url, 'alice', 'Alice', r);
      const bob = await user(srv.url, 'bob', 'Bob', r);
      alice.s.emit('startTyping', r);
      await bob.rec.next('typing', { filter: (t) => t.isTyping === true });
      await request(alice.s, 'leaveRoom', r);
      const [off] = await bob.rec.next('typing');
      assert.deepEqual(off, typing(r, false));
      await bob.rec.next('userLeft');
    });

    it('disconnecting while typing emits typing false', async () => {
      const r = room();
      const alice = await user(srv.url, 'alice', 'Alice', r);
      const bob = await user(srv.url, 'bob', 'Bob', r);
      alice.s.emit('startTyping', r);
      await bob.rec.next('typing', { filter: (t) => t.isTyping === true });
      alice.s.close();
      const [off] = await bob.rec.next('typing');
      assert.deepEqual(off, typing(r, false));
    });
  });

  // ---- getHistory -----------------------------------------------------------------------------

  describe('getHistory', () => {
    let r;
    let sent; // the 5 delivered messages, in order
    before(async () => {
      r = room('history');
      const alice = await user(srv.url, 'alice', 'Alice', r);
      const bob = await user(srv.url, 'bob', 'Bob', r);
      for (let i = 1; i <= 5; i++) {
        const who = i % 2 ? alice : bob;
        await request(who.s, 'sendMessage', { roomId: r, text: `h${i}` });
      }
      sent = (await alice.rec.count('message', 5)).map(([m]) => m);
      closeAll();
    });

    it('returns {messages} oldest first, equal to what was delivered', async () => {
      const carol = await user(srv.url, 'carol', 'Carol', r);
      const res = await request(carol.s, 'getHistory', { roomId: r });
      assert.ok(res && Array.isArray(res.messages), `result is {messages: [...]}: ${JSON.stringify(res)}`);
      assert.deepEqual(res.messages, sent);
    });

    it('limit returns the newest N, still oldest first', async () => {
      const carol = await user(srv.url, 'carol', 'Carol', r);
      const res = await request(carol.s, 'getHistory', { roomId: r, limit: 2 });
      assert.deepEqual(res.messages.map((m) => m.text), ['h4', 'h5']);
    });

    it('before=<id> returns the messages older than it', async () => {
      const carol = await user(srv.url, 'carol', 'Carol', r);
      let res = await request(carol.s, 'getHistory', { roomId: r, before: sent[2].id });
      assert.deepEqual(res.messages.map((m) => m.text), ['h1', 'h2']);
      res = await request(carol.s, 'getHistory', { roomId: r, before: sent[4].id, limit: 2 });
      assert.deepEqual(res.messages.map((m) => m.text), ['h3', 'h4']);
      res = await request(carol.s, 'getHistory', { roomId: r, before: sent[0].id });
      assert.deepEqual(res.messages, []);
    });

    it('a non-member -> NOT_IN_ROOM (also for a room nobody is in)', async () => {
      const dave = await user(srv.url, 'dave', 'Dave');
      await expectError(request(dave.s, 'getHistory', { roomId: r }), 'NOT_IN_ROOM');
      await expectError(request(dave.s, 'getHistory', { roomId: room('empty') }), 'NOT_IN_ROOM');
    });

    it('a room without messages has an empty history', async () => {
      const dave = await user(srv.url, 'dave', 'Dave', room('quiet'));
      const joined = dave.rec.all('roomMembers')[0][0].roomId;
      const res = await request(dave.s, 'getHistory', { roomId: joined });
      assert.deepEqual(res, { messages: [] });
    });
  });

  // ---- signal ---------------------------------------------------------------------------------

  describe('signal', () => {
    it("reaches every connection of the target when they share a room, not the sender's", async () => {
      const r = room();
      const alice = await user(srv.url, 'alice', 'Alice', r);
      const bob1 = await user(srv.url, 'bob', 'Bob', r);
      const bob2 = await user(srv.url, 'bob', 'Bob'); // a second device, not in the room
      const notToSender = noEvent(alice.s, 'signal', 500);
      const data = { type: 'offer', sdp: 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n', candidates: [1, 2] };
      await request(alice.s, 'signal', { toUserId: 'bob', data });
      const expected = { fromUserId: 'alice', fromUsername: 'Alice', data };
      assert.deepEqual((await bob1.rec.next('signal'))[0], expected);
      assert.deepEqual((await bob2.rec.next('signal'))[0], expected);
      await notToSender;
    });

    it('NOT_REACHABLE without a shared room, for an unknown user, and after the room is left', async () => {
      const r = room();
      const alice = await user(srv.url, 'alice', 'Alice', r);
      const carol = await user(srv.url, 'carol', 'Carol', room()); // connected, other room
      const none = noEvent(carol.s, 'signal', 500);
      await expectError(request(alice.s, 'signal', { toUserId: 'carol', data: 'x' }), 'NOT_REACHABLE');
      await expectError(request(alice.s, 'signal', { toUserId: 'nobody-connected', data: 'x' }), 'NOT_REACHABLE');
      const bob = await user(srv.url, 'bob', 'Bob', r);
      await request(alice.s, 'signal', { toUserId: 'bob', data: 'ok' });
      await bob.rec.next('signal');
      await request(bob.s, 'leaveRoom', r);
      await expectError(request(alice.s, 'signal', { toUserId: 'bob', data: 'x' }), 'NOT_REACHABLE');
      await none;
    });

    it('a Buffer inside data arrives as a Buffer', async () => {
      const r = room();
      const alice = await user(srv.url, 'alice', 'Alice', r);
      const bob = await user(srv.url, 'bob', 'Bob', r);
      await request(alice.s, 'signal', { toUserId: 'bob', data: { kind: 'blob', blob: Buffer.from([0, 1, 2, 254, 255]) } });
      const [sig] = await bob.rec.next('signal');
      assert.equal(sig.fromUserId, 'alice');
      assert.equal(sig.data.kind, 'blob');
      assert.ok(Buffer.isBuffer(sig.data.blob), 'data.blob is a Buffer');
      assert.deepEqual([...sig.data.blob], [0, 1, 2, 254, 255]);
    });

    it('data over 64 KiB is refused with an error ack and not delivered', async () => {
      const r = room();
      const alice = await user(srv.url, 'alice', 'Alice', r);
      const bob = await user(srv.url, 'bob', 'Bob', r);
      const none = noEvent(bob.s, 'signal', 500);
      await expectError(request(alice.s, 'signal', { toUserId: 'bob', data: 'x'.repeat(70 * 1024) }),
        ['INVALID_MESSAGE', 'NOT_REACHABLE', 'INVALID_ROOM', 'ACCESS_DENIED', 'INTERNAL']);
      await none;
    });
  });

  // ---- recovery -------------------------------------------------------------------------------

  describe('connection state recovery', () => {
    it('after socket.io.engine.close(): recovered, rooms back, the missed message delivered, no presence churn', { timeout: 15000 }, async () => {
      const r = room('recover');
      const a = connect(srv.url, {
        reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 200,
        auth: { token: token('alice', { username: 'Alice' }) },
      });
      const ra = recorder(a);
      await a.ready;
      assert.notEqual(a.recovered, true, 'a fresh connection is not "recovered"');
      await request(a, 'joinRoom', r);
      const b = await user(srv.url, 'bob', 'Bob', r);
      await ra.next('userJoined');

      // a has received a room message (and so holds an offset) before the drop
      await request(b.s, 'sendMessage', { roomId: r, text: 'before the drop' });
      await ra.next('message', { filter: (m) => m.text === 'before the drop' });

      const noLeft = noEvent(b.s, 'userLeft', 2500, (u) => u.userId === 'alice');
      const noJoin = noEvent(b.s, 'userJoined', 2500, (u) => u.userId === 'alice');
      const dropped = once(a, 'disconnect', 3000);
      a.io.engine.close();
      await dropped;
      const back = once(a, 'connect', 5000);
      await request(b.s, 'sendMessage', { roomId: r, text: 'missed while away' });
      await back;

      assert.equal(a.recovered, true, 'socket.recovered');
      const [missed] = await ra.next('message', { filter: (m) => m.text === 'missed while away' });
      assertMessage(missed, { roomId: r, text: 'missed while away', userId: 'bob', username: 'Bob' });

      // rooms back: live traffic reaches a without a new joinRoom
      await request(b.s, 'sendMessage', { roomId: r, text: 'after the return' });
      await ra.next('message', { filter: (m) => m.text === 'after the return' });
      assert.deepEqual(ra.all('message').map(([m]) => m.text),
        ['before the drop', 'missed while away', 'after the return'], 'each message exactly once, in order');
      await noLeft;
      await noJoin;
    });
  });
});

// ---------------------------------------------------------------------------------------------

describe('--room-policy claims', () => {
  let srv;
  before(async () => { srv = await startServer({ args: ['--room-policy', 'claims'] }); });
  after(() => srv && srv.stop());
  afterEach(closeAll);

  it('a token without a rooms claim cannot join any room', async () => {
    const s = await userSocket(srv.url, 'plain', { username: 'Plain' });
    for (const r of ['lobby', 'team-a', 'anything']) {
      await expectError(request(s, 'joinRoom', r), 'ACCESS_DENIED', r);
    }
  });

  it('a token with the claim joins the rooms it names, and only those', async () => {
    const s = await userSocket(srv.url, 'member', { rooms: ['lobby', 'team-*'] });
    await request(s, 'joinRoom', 'lobby');
    await request(s, 'joinRoom', 'team-a');
    await expectError(request(s, 'joinRoom', 'other'), 'ACCESS_DENIED');
  });
});

describe('--typing-timeout 300', () => {
  let srv;
  before(async () => { srv = await startServer({ args: ['--typing-timeout', '300'] }); });
  after(() => srv && srv.stop());
  afterEach(closeAll);

  it('typing stops by itself after the timeout', async () => {
    const r = room();
    const alice = await user(srv.url, 'alice', 'Alice', r);
    const bob = await user(srv.url, 'bob', 'Bob', r);
    alice.s.emit('startTyping', r);
    const [on] = await bob.rec.next('typing');
    const t0 = Date.now();
    assert.equal(on.isTyping, true);
    const [off] = await bob.rec.next('typing', { timeout: 2000 });
    const elapsed = Date.now() - t0;
    assert.deepEqual(off, { roomId: r, userId: 'alice', username: 'Alice', isTyping: false });
    assert.ok(elapsed >= 150 && elapsed <= 1500, `auto-stop after ${elapsed} ms (timeout 300)`);
    // and a new start after the auto-stop is a change again
    alice.s.emit('startTyping', r);
    const [again] = await bob.rec.next('typing');
    assert.equal(again.isTyping, true);
  });
});

describe('history survives a restart (--data-dir)', () => {
  let dir;
  let srv;
  before(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-data-')); });
  after(async () => {
    if (srv) await srv.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  afterEach(closeAll);

  it('3 messages are read back in order after the server restarts with the same data dir', { timeout: 40000 }, async () => {
    const r = 'persistent-room';
    srv = await startServer({ args: ['--data-dir', dir] });
    const alice = await user(srv.url, 'alice', 'Alice', r);
    for (const text of ['one', 'two', 'three']) await request(alice.s, 'sendMessage', { roomId: r, text });
    const sent = (await alice.rec.count('message', 3)).map(([m]) => m);
    closeAll();
    await srv.stop();

    srv = await startServer({ args: ['--data-dir', dir] });
    const again = await user(srv.url, 'alice', 'Alice', r);
    const res = await request(again.s, 'getHistory', { roomId: r });
    assert.deepEqual(res.messages, sent);

    const next = await request(again.s, 'sendMessage', { roomId: r, text: 'four' });
    assert.ok(next.id > sent[2].id, `ids keep increasing across a restart: ${sent[2].id} !< ${next.id}`);
    const all = await request(again.s, 'getHistory', { roomId: r });
    assert.deepEqual(all.messages.map((m) => m.text), ['one', 'two', 'three', 'four']);
  });
});
