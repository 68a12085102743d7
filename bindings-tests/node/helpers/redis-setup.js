'use strict';
// Which Redis the cluster tests run on: one `redis-server` (the default) or a Redis Cluster of
// three masters with one replica each (SB_TEST_REDIS=cluster; `make test` runs the cluster
// files both ways). Both handles have the same shape for the tests: mode, label, url,
// running, stop(), kill(), restart() (an outage of the whole set-up and its return on the
// same ports, empty), close().

const { after } = require('node:test');
const { startRedis } = require('./redis');
const { startRedisCluster } = require('./redis-cluster');

const MODES = ['single', 'cluster'];
/** 'single' or 'cluster', from SB_TEST_REDIS. */
const REDIS_MODE = process.env.SB_TEST_REDIS || 'single';
if (!MODES.includes(REDIS_MODE)) {
  throw new Error(`SB_TEST_REDIS must be one of ${MODES.join(', ')} (got ${JSON.stringify(REDIS_MODE)})`);
}
const CLUSTER = REDIS_MODE === 'cluster';
/** For test names: which set-up ran. */
const REDIS_LABEL = CLUSTER ? 'Redis Cluster' : 'one Redis';

/** `title` with the set-up it runs on, e.g. 'cross-node delivery [Redis Cluster]'. */
const onRedis = (title) => `${title} [${REDIS_LABEL}]`;

/** Starts the set-up SB_TEST_REDIS names. Resolves its handle (see above). */
async function startRedisForTest() {
  if (CLUSTER) {
    const c = await startRedisCluster();
    // A getter, not Object.assign (which would copy the value `running` has now): the
    // outage test asks after stop() whether the cluster must be restarted.
    Object.defineProperty(c, 'running', { get: () => c.nodes.some((n) => n.running) });
    c.kill = async () => { await Promise.all(c.nodes.map((n) => n.redis.kill())); };
    return c;
  }
  const r = await startRedis();
  return Object.assign(r, { mode: 'single', label: 'one Redis' });
}

/**
 * One set-up for the whole test file (a Redis Cluster takes seconds to form): call at the top
 * level; the returned function resolves the set-up, started on first use and closed after the
 * file. The describe blocks use distinct rooms, so they do not see each other's data; a block
 * that takes Redis away (an outage test) starts its own with startRedisForTest() instead.
 */
function redisForFile() {
  let started = null;
  after(async () => {
    const r = started && await started.catch(() => null);
    if (r) await r.close();
  });
  return () => {
    if (!started) started = startRedisForTest();
    return started;
  };
}

module.exports = { REDIS_MODE, CLUSTER, REDIS_LABEL, onRedis, startRedisForTest, redisForFile };
