'use strict';
// A real Redis Cluster for the cluster tests: three masters with one replica each, every one a
// `redis-server` of helpers/redis (free loopback ports, no persistence, temporary directories,
// ended on process exit), created with `redis-cli --cluster create --cluster-yes`.
//
// The handle knows the topology (which node masters which slots, which replicates which) and
// can take it apart: `killMaster(i)` + `waitForFailover(i)` for a failover, `killShard(i)` for
// a whole shard down, `stop()` / `restart()` for a full outage like a single Redis's.

const { execFile } = require('node:child_process');
const { startRedis, requireRedisServer, requireRedisCli, CLI_BIN } = require('./redis');
const { freePort } = require('./server');

const SLOTS = 16384;
/** How long forming the cluster, a failover or a restart may take on a slow shared machine. */
const FORM_TIMEOUT_MS = 30000;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Runs redis-cli with `args`; resolves its stdout, rejects with its stderr on failure. */
function cli(args, timeoutMs = 10000) {
  return new Promise((resolve, reject) => {
    execFile(CLI_BIN, args, { encoding: 'utf8', timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${CLI_BIN} ${args.join(' ')}: ${err.message}\n${stderr}${stdout}`));
      else resolve(stdout);
    });
  });
}

/** One command to the node on `port` (raw output, so replies are not quoted). */
function nodeCommand(port, ...command) {
  return cli(['-h', '127.0.0.1', '-p', String(port), '--raw', ...command], 5000);
}

/** CRC16/XMODEM, the checksum Redis Cluster maps keys to slots with. */
function crc16(buf) {
  let crc = 0;
  for (const byte of buf) {
    crc ^= byte << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

/**
 * The slot of `key` by Redis Cluster's rule: only the part between the first `{` and the next
 * `}` counts when it is non-empty (the hash tag), else the whole key. Works on UTF-8 bytes.
 */
function slotOf(key) {
  const bytes = Buffer.from(key, 'utf8');
  const open = bytes.indexOf(0x7b);
  if (open !== -1) {
    const close = bytes.indexOf(0x7d, open + 1);
    if (close > open + 1) return crc16(bytes.subarray(open + 1, close)) % SLOTS;
  }
  return crc16(bytes) % SLOTS;
}

/**
 * The hash tag the engine gives everything about a room (kind 'r'), a document ('d') or a node
 * ('n'), as core/src/cluster/redis/keys.rs builds it: `{<kind>:<name>}` with `%`, `{`, `}`
 * escaped as `%25`, `%7B`, `%7D`, so a brace in a name cannot end the tag early.
 */
function engineTag(kind, name) {
  return `{${kind}:${name.replace(/[%{}]/g, (c) => ({ '%': '%25', '{': '%7B', '}': '%7D' })[c])}}`;
}

/** The slot of a room's keys and channel (history, presence, typing, its messages). */
const roomSlot = (roomId) => slotOf(`switchboard:${engineTag('r', roomId)}:r`);
/** The slot of a Yjs document's keys and channel. */
const documentSlot = (doc) => slotOf(`switchboard:${engineTag('d', doc)}:y`);
/** The slot of the node registry (`switchboard:{nodes}`) and of the all-nodes channel. */
const REGISTRY_SLOT = slotOf('switchboard:{nodes}');
const ALL_CHANNEL_SLOT = slotOf('switchboard:{all}');

/**
 * Parses `CLUSTER NODES` into [{ id, port, flags, role, masterId, connected, slots: [[a, b]] }].
 */
function parseNodes(text) {
  return text.trim().split('\n').filter(Boolean).map((line) => {
    const [id, addr, flags, master, , , , link, ...slotSpecs] = line.trim().split(' ');
    const port = Number(addr.split('@')[0].split(':').pop());
    const flagList = flags.split(',');
    const slots = slotSpecs.filter((s) => !s.startsWith('[')).map((s) => {
      const [a, b] = s.split('-').map(Number);
      return [a, b === undefined ? a : b];
    });
    return {
      id,
      port,
      flags: flagList,
      role: flagList.includes('master') ? 'master' : 'replica',
      failed: flagList.includes('fail') || flagList.includes('fail?'),
      masterId: master === '-' ? null : master,
      connected: link === 'connected',
      slots,
    };
  });
}

/** `CLUSTER INFO` as an object of its fields. */
async function clusterInfo(port) {
  const text = await nodeCommand(port, 'CLUSTER', 'INFO');
  return Object.fromEntries(text.trim().split('\n').map((l) => l.trim().split(':')));
}

/**
 * Starts a Redis Cluster of `masters` masters with `replicas` replicas each. Resolves a handle:
 *   mode 'cluster', label ('Redis Cluster (3 masters + 3 replicas)'),
 *   url ('redis+cluster://127.0.0.1:P1,...', every node as a seed),
 *   nodes: [{ index, port, id, redis (the helpers/redis handle), running }],
 *   shards: [{ index, master, replica }] (the nodes as created; `refresh()` reads who masters now),
 *   slotOf(key), roomSlot(roomId), documentSlot(doc) (the engine's hash tags),
 *   masterForSlot(slot) (resolves the node mastering it now),
 *   shardOfSlot(slot) (the shard index owning the slot: slots never move between shards here),
 *   refresh() (re-reads the topology from a live node), waitReady(),
 *   killMaster(i) (SIGKILL the node mastering shard i now; resolves it),
 *   waitForFailover(i) (until shard i has a live master and the cluster is ok again),
 *   killShard(i) (SIGKILL every node of shard i), restartShard(i) (its stopped nodes again),
 *   stop() / restart() (all nodes, same ports,
 *   same cluster: the node ids and slots are kept in nodes.conf, the data is not),
 *   close() (stops and removes everything).
 */
async function startRedisCluster({ masters = 3, replicas = 1, nodeTimeoutMs = 1000 } = {}) {
  requireRedisServer();
  requireRedisCli();
  const count = masters * (1 + replicas);
  const nodes = [];
  const handle = {
    mode: 'cluster',
    label: `Redis Cluster (${masters} masters + ${masters * replicas} replicas)`,
    nodes,
    shards: [],
    get url() { return `redis+cluster://${nodes.map((n) => `127.0.0.1:${n.port}`).join(',')}`; },
    slotOf,
    roomSlot,
    documentSlot,
    async close() {
      await Promise.all(nodes.map((n) => n.redis.close()));
    },
  };
  try {
    const taken = new Set();
    /** A free port none of this cluster's nodes uses (freePort may hand out one twice). */
    const distinctPort = async () => {
      for (;;) {
        const p = await freePort();
        if (!taken.has(p)) {
          taken.add(p);
          return p;
        }
      }
    };
    for (let i = 0; i < count; i++) {
      let redis;
      let busPort;
      // Another process may take a port between freePort and redis-server's bind: retry.
      for (let attempt = 1; !redis; attempt++) {
        const port = await distinctPort();
        // The bus port is chosen too: port + 10000 (the default) may be taken or past 65535.
        busPort = await distinctPort();
        try {
          redis = await startRedis({
            port,
            args: ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf',
              '--cluster-node-timeout', String(nodeTimeoutMs), '--cluster-require-full-coverage', 'no',
              '--cluster-port', String(busPort),
              // A replica of a shard whose master died long ago may still take over.
              '--cluster-replica-validity-factor', '0'],
          });
        } catch (e) {
          if (attempt >= 3 || !/Address already in use/.test(e.message)) throw e;
        }
      }
      nodes.push({
        index: i,
        port: redis.port,
        busPort,
        redis,
        id: null,
        get running() { return this.redis.running; },
      });
    }
    await cli(['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`),
      '--cluster-replicas', String(replicas), '--cluster-yes'], FORM_TIMEOUT_MS);
    await waitReady(handle);
    // The shards as created: redis-cli picks which node replicates which, so read it back.
    const topo = await topology(handle);
    const byPort = new Map(nodes.map((n) => [n.port, n]));
    for (const t of topo) byPort.get(t.port).id = t.id;
    const masterNodes = topo.filter((t) => t.role === 'master').sort((a, b) => a.slots[0][0] - b.slots[0][0]);
    handle.shards = masterNodes.map((m, index) => ({
      index,
      slots: m.slots,
      master: byPort.get(m.port),
      replicas: topo.filter((t) => t.masterId === m.id).map((t) => byPort.get(t.port)),
      get replica() { return this.replicas[0]; },
    }));
  } catch (e) {
    await handle.close();
    throw e;
  }

  Object.assign(handle, {
    refresh: () => topology(handle),
    waitReady: () => waitReady(handle),
    shardOfSlot(slot) {
      const s = handle.shards.find((sh) => sh.slots.some(([a, b]) => slot >= a && slot <= b));
      if (!s) throw new Error(`no shard owns slot ${slot}`);
      return s.index;
    },
    async masterForSlot(slot) {
      const topo = await topology(handle);
      const m = topo.find((t) => t.role === 'master' && !t.failed &&
        t.slots.some(([a, b]) => slot >= a && slot <= b));
      return m ? nodes.find((n) => n.port === m.port) : null;
    },
    /** The node of shard `i` that is master now (after a failover, the former replica). */
    async currentMaster(i) {
      const shard = handle.shards[i];
      const members = [shard.master, ...shard.replicas].filter((n) => n.running);
      for (const n of members) {
        const role = (await nodeCommand(n.port, 'ROLE')).split('\n')[0].trim();
        if (role === 'master') return n;
      }
      return null;
    },
    async killMaster(i) {
      const m = await handle.currentMaster(i);
      if (!m) throw new Error(`shard ${i} has no running master to kill`);
      await m.redis.kill();
      return m;
    },
    async waitForFailover(i, ms = FORM_TIMEOUT_MS) {
      const deadline = Date.now() + ms;
      for (;;) {
        try {
          const m = await handle.currentMaster(i);
          // Its own view says master; the others must agree, and the cluster must be ok.
          if (m && await everyNodeOk(handle, (topo) => topo.some((t) => t.port === m.port &&
            t.role === 'master' && !t.failed && t.slots.length > 0))) return m;
        } catch { /* a node is still settling */ }
        if (Date.now() > deadline) throw new Error(`shard ${i}: no failover within ${ms} ms`);
        await sleep(100);
      }
    },
    async killShard(i) {
      const shard = handle.shards[i];
      await Promise.all([shard.master, ...shard.replicas].map((n) => n.redis.kill()));
    },
    /** Starts shard `i`'s stopped nodes again (same ports and ids, empty) and waits until ready. */
    async restartShard(i) {
      const shard = handle.shards[i];
      await Promise.all([shard.master, ...shard.replicas].filter((n) => !n.running).map((n) => n.redis.restart()));
      await waitReady(handle);
    },
    async stop() {
      await Promise.all(nodes.map((n) => n.redis.stop()));
    },
    async restart() {
      await handle.stop();
      await Promise.all(nodes.map((n) => n.redis.restart()));
      await waitReady(handle);
      return handle;
    },
  });
  return handle;
}

/** Resolves the topology as the first running node sees it. */
async function topology(handle) {
  let last;
  for (const n of handle.nodes.filter((x) => x.running)) {
    try {
      return parseNodes(await nodeCommand(n.port, 'CLUSTER', 'NODES'));
    } catch (e) {
      last = e;
    }
  }
  throw last || new Error('no Redis Cluster node is running');
}

/**
 * True when every running node says cluster_state:ok, sees every slot assigned, and its
 * topology passes `check` (by default: every running node is known and connected).
 */
async function everyNodeOk(handle, check) {
  const running = handle.nodes.filter((n) => n.running);
  for (const n of running) {
    const info = await clusterInfo(n.port);
    if (info.cluster_state !== 'ok' || Number(info.cluster_slots_assigned) !== SLOTS) return false;
    const topo = parseNodes(await nodeCommand(n.port, 'CLUSTER', 'NODES'));
    if (check && !check(topo)) return false;
  }
  return true;
}

/**
 * Waits until every node reports cluster_state:ok, all of them agree on the masters of all
 * slots, and every replica's link to its master is up (so that a failover can happen).
 */
async function waitReady(handle, ms = FORM_TIMEOUT_MS) {
  const deadline = Date.now() + ms;
  let why = 'not asked yet';
  for (;;) {
    try {
      const ok = await everyNodeOk(handle, (topo) => {
        const live = topo.filter((t) => handle.nodes.some((n) => n.port === t.port && n.running));
        return live.length === handle.nodes.filter((n) => n.running).length &&
          live.every((t) => !t.failed && (t.flags.includes('myself') || t.connected));
      });
      if (ok) {
        const links = await Promise.all(handle.nodes.filter((n) => n.running).map(async (n) => {
          const info = await nodeCommand(n.port, 'INFO', 'replication');
          return !/role:slave/.test(info) || /master_link_status:up/.test(info);
        }));
        if (links.every(Boolean)) return;
        why = 'a replica link is not up';
      } else {
        why = 'a node is not ok or does not know every node yet';
      }
    } catch (e) {
      why = e.message;
    }
    if (Date.now() > deadline) throw new Error(`the Redis Cluster is not ready within ${ms} ms: ${why}`);
    await sleep(100);
  }
}

module.exports = {
  startRedisCluster,
  slotOf,
  roomSlot,
  documentSlot,
  engineTag,
  REGISTRY_SLOT,
  ALL_CHANNEL_SLOT,
  crc16,
  parseNodes,
  nodeCommand,
  SLOTS,
};
