/**
 * Every part of expeed-sync on a real 3-master Redis Cluster (scripts/setup.sh, WITH_TEST_TOOLS=1):
 * each of our Lua scripts and multi-key commands (token budget, request rate, checkpoints, dead
 * letters, pending settings, heartbeat, registry), BullMQ's backfill and ingest queues, and the
 * webhook producer. A key outside the hash-tagged prefix's slot would fail here with CROSSSLOT
 * or a "non local key" script error; the last tests check that every Lua script in src/ ran here
 * (read from the source, so a new script without a cluster test fails this file) and that every key
 * we wrote shares one slot.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Cluster, Redis } from 'ioredis';
import { startSimulator, type Simulator } from '../../src/simulator/index.js';
import { createApp, type App } from '../../src/app/app.js';
import { Heartbeat } from '../../src/pull/heartbeat.js';
import { ReconnectWatch, reconnectJobId } from '../../src/pull/reconnect.js';
import { RequestRate } from '../../src/platform/request-rate.js';
import { PlatformPause } from '../../src/platform/platform-pause.js';
import { PendingSettingsStore } from '../../src/devices/pending-settings.js';
import { StatusPushLog } from '../../src/pull/status-slot.js';
import { TokenBudget } from '../../src/platform/token/budget.js';
import { CredentialsRejectedError, ENDPOINT } from '../../src/platform/errors.js';
import {
  closeRedis,
  createRedis,
  isCluster,
  redisAddress,
  redisKey,
  RedisUnreachableError,
  waitForRedis,
} from '../../src/base/redis.js';
import { type Config } from '../../src/base/config.js';
import { loadConfig } from '../../src/base/load-config.js';
import {
  clusterNodes,
  createTestDatabase,
  deleteRedisPrefix,
  hasRedisCluster,
  INFLUX_URL,
  startRedisServer,
  TEST_CLUSTER_NODES,
  testPrefix,
  until,
} from '../helpers/services.js';
import {
  drained,
  expectedTotals,
  influxTotals,
  numericFields,
  PLATFORM_KEY,
  SECRET_KEY,
  scrubber,
  silentLogger,
  testConfig,
} from '../fixtures/pull-env.js';
import { startStack, type Stack } from './push-stack.js';
import { runCli } from '../helpers/cli.js';
import { testEnv } from '../fixtures/pull-env.js';

const clusterUp = await hasRedisCluster();
if (!clusterUp && process.env.CI) {
  throw new Error(
    `no Redis Cluster answers at ${TEST_CLUSTER_NODES}: scripts/setup.sh with WITH_TEST_TOOLS=1 should have started it`,
  );
}

const HOUR = 3_600_000;
const FROM = Date.UTC(2026, 0, 10);
const TO = FROM + 2 * 24 * HOUR;
const DEVICES = [
  { id: 'dev-a', key: 'key-a', cadenceSec: 60 },
  { id: 'dev/b c', key: 'key-b', cadenceSec: 120 },
  { id: 'dev:ç', key: 'key-c', cadenceSec: 45 },
];

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));

/**
 * Every Lua script the product evaluates, read from the source: each `.eval(NAME, …)` call with the
 * text of `const NAME = \`…\`` in the same file (`${OTHER}` inside it replaced by OTHER's text).
 */
function luaScriptsInSource(dir = SRC): Map<string, string> {
  const out = new Map<string, string>();
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      for (const [k, v] of luaScriptsInSource(path)) out.set(k, v);
      continue;
    }
    if (!entry.name.endsWith('.ts')) continue;
    const text = readFileSync(path, 'utf8');
    const calls = [...text.matchAll(/\.eval\(\s*([A-Za-z_$][\w$]*)?/g)];
    if (calls.length === 0) continue;
    const consts = new Map(
      [...text.matchAll(/const ([A-Z_][A-Z0-9_]*) = `([^`]*)`/g)].map((m) => [m[1], m[2]] as const),
    );
    const resolve = (name: string, seen: string[] = []): string => {
      const raw = consts.get(name);
      if (raw === undefined || seen.includes(name))
        throw new Error(`${path}: .eval(${name}, …) — no template constant ${name} to read the script from`);
      return raw.replace(/\$\{(\w+)\}/g, (_, inner: string) => resolve(inner, [...seen, name]));
    };
    for (const [, name] of calls) {
      if (!name) throw new Error(`${path}: an .eval( whose script is not a named constant: this test cannot check it`);
      out.set(`${path.slice(SRC.length)}:${name}`, resolve(name));
    }
  }
  return out;
}

describe.skipIf(!clusterUp)('on a 3-master Redis Cluster', () => {
  /** the text of every script that ran on the cluster without an error */
  const evaluated = new Set<string>();
  let sim: Simulator;
  let stack: App;
  let config: Config;
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let webhook: Stack | undefined;
  const plainPrefix = testPrefix('cl');
  const nodes = clusterNodes();

  beforeAll(async () => {
    sim = await startSimulator({
      platformKey: PLATFORM_KEY,
      secretKey: SECRET_KEY,
      devices: DEVICES,
      from: FROM - 24 * HOUR,
      to: TO + 24 * HOUR,
      seed: 11,
    });
    db = await createTestDatabase('cl');
    config = testConfig({
      simUrl: sim.url,
      prefix: plainPrefix,
      db: db.name,
      influxUrl: INFLUX_URL,
      env: {
        REDIS_CLUSTER_NODES: TEST_CLUSTER_NODES,
        EXPEED_BACKFILL_WINDOW: '12h',
        EXPEED_PAGE_LIMIT: '500',
        WORKER_CONCURRENCY: '3',
      },
    });
    stack = createApp(config, { logger: silentLogger(), scrubber: scrubber() });
    // every component of the stack shares this connection: note each script it ran (on the cluster itself)
    const conn = stack.redis as unknown as { eval: (...a: unknown[]) => Promise<unknown> };
    const evalOnCluster = conn.eval.bind(conn);
    conn.eval = async (...a: unknown[]) => {
      const out = await evalOnCluster(...a);
      evaluated.add(String(a[0]));
      return out;
    };
  });

  afterAll(async () => {
    await webhook?.close();
    await stack?.close();
    await sim?.close();
    await db?.drop();
    await deleteRedisPrefix(config.prefix, nodes);
  });

  test('the configuration wraps the prefix in a hash tag and every component talks to the cluster', async () => {
    expect(config.prefix).toBe(`{${plainPrefix}}`);
    expect(config.prefixWrapped).toBe(true);
    expect(isCluster(stack.redis)).toBe(true);
    expect(await stack.redis.ping()).toBe('PONG');
  });

  test('a backfill of three devices through BullMQ lands exactly what the simulator holds, with one token call', async () => {
    for (const d of DEVICES) await stack.registry.upsert(d, 'cli');
    expect((await stack.registry.list()).map((d) => d.id).sort()).toEqual(DEVICES.map((d) => d.id).sort());
    let queued = 0;
    for (const d of DEVICES)
      queued += (await stack.backfills.enqueue({ deviceId: d.id, from: FROM, to: TO, reason: 'manual' })).length;
    expect(queued).toBe(3 * 5); // 12 h windows on the platform-local grid over 48 h: 5 per device
    const again = await stack.backfills.enqueue({ deviceId: 'dev-a', from: FROM, to: TO, reason: 'manual' });
    expect(again.every((w) => w.deduplicated)).toBe(true);

    stack.startBackfillWorker();
    const counts = await drained(stack.backfillQueue);
    expect(counts).toMatchObject({ failed: 0, completed: 15 });
    for (const d of DEVICES) {
      const expected = expectedTotals(sim, d.id, FROM, TO);
      expect(Object.keys(expected).length).toBeGreaterThan(1);
      expect(
        await influxTotals(db.name, INFLUX_URL, d.id, Object.keys(expected), numericFields(sim, d.id, FROM, TO)),
      ).toEqual(expected);
      expect((await stack.checkpoints.get(d.id))?.upTo).toBe(TO);
    }
    expect(sim.stats.tokenCalls).toBe(1);
    expect(sim.stats.violations).toEqual([]);
  });

  test('token budget: an invalidated token is refreshed once, counted in the shared day count', async () => {
    const token = await stack.tokens.get();
    await stack.tokens.invalidate(token);
    const fresh = await stack.tokens.get();
    expect(fresh).not.toBe(token);
    expect(sim.stats.tokenCalls).toBe(2);
    expect((await stack.tokens.usage()).calls).toBe(2);
  });

  test('token cool-down: a fresh token rejected pauses token calls, the pause is lifted; a refused credential is recorded', async () => {
    // a second budget under the same hash tag, with a vendor stand-in: the shared one stays as the tests above left it
    let n = 0;
    const aux = new TokenBudget({
      redis: stack.redis,
      prefix: `${config.prefix}:aux`,
      fetchToken: async () => ({ accessToken: `aux-token-${++n}`, expiresIn: 3600 }),
    });
    const first = await aux.get();
    expect(first).toBe('aux-token-1');
    await expect(aux.rejected(first, 'invalid token')).rejects.toThrow(/paused|cool/i);
    expect((await aux.usage()).cooldownKind).toBe('token');
    expect(await aux.clearCooldown()).toBe(true);
    expect((await aux.usage()).cooldownUntil).toBeUndefined();
    const second = await aux.get();
    expect(second).toBe('aux-token-2');
    await aux.accepted(second);
    await aux.rejected(second); // it had worked: expired, dropped without a pause
    expect((await aux.usage()).cooldownUntil).toBeUndefined();
    expect(await aux.get()).toBe('aux-token-3');
    await aux.close();

    const refused = new TokenBudget({
      redis: stack.redis,
      prefix: `${config.prefix}:refused`,
      fetchToken: async () => Promise.reject(new CredentialsRejectedError('bad key')),
    });
    await expect(refused.get()).rejects.toBeInstanceOf(CredentialsRejectedError);
    expect((await refused.usage()).cooldownKind).toBe('credentials');
    await refused.close();
  });

  test('dirty hours of the backfill, and their days, are cleared by their scores; status pushes keep the newest', async () => {
    const due = await stack.rollup.dirty.settled(0, 1000);
    expect(due.length).toBeGreaterThan(100); // the backfill above marked the hours it wrote (3 devices × 48 h, less empty ones)
    expect(await stack.rollup.dirty.clear(due)).toBe(due.length);
    expect(await stack.rollup.dirty.settled(0, 1000)).toEqual([]);

    // the days of those hours: touched (strictly raising the score), then cleared by the score read
    const hours = due.filter((d) => d.deviceId === 'dev-a').map((d) => d.hour);
    const days = stack.rollup.days.daysOf(hours);
    expect(days.length).toBeGreaterThan(1);
    expect(await stack.rollup.days.touchHours('dev-a', hours)).toBe(days.length);
    const read = await stack.rollup.days.settled(0, 1000);
    expect(read.map((d) => d.hour).sort()).toEqual(days);
    await stack.rollup.days.touch('dev-a', [days[0]]); // touched again meanwhile: stays dirty
    expect(await stack.rollup.days.clear(read)).toBe(days.length - 1);
    expect(await stack.rollup.days.count('dev-a', days)).toBe(1);

    const pushes = new StatusPushLog(stack.redis, config.prefix);
    await pushes.record('dev-a', 2000);
    await pushes.record('dev-a', 1000);
    expect((await pushes.all()).get('dev-a')).toBe(2000);
  });

  test('request rate: takes are counted in the current second’s key', async () => {
    const rate = new RequestRate({ redis: stack.redis, prefix: config.prefix, perSecond: 1000 });
    const before = Math.floor(Date.now() / 1000);
    await rate.take();
    await rate.take();
    rate.close();
    const keys = [before, before + 1].map((s) => redisKey(config.prefix, 'rate', 'platform', String(s)));
    const counted = (await Promise.all(keys.map((k) => stack.redis.get(k)))).reduce((n, v) => n + Number(v ?? 0), 0);
    expect(counted).toBeGreaterThanOrEqual(2);
  });

  test('platform pause: a Retry-After begins a shared pause, a longer one extends it, a shorter one is within it', async () => {
    const t0 = Date.now();
    let now = t0;
    const pause = new PlatformPause({ redis: stack.redis, prefix: config.prefix, now: () => now });
    const info = (retryAfter: string) => ({ endpoint: ENDPOINT.history, status: 429, retryAfter });
    expect((await pause.throttled(info('2'))).effect).toBe('began');
    expect(await pause.pausedUntil()).toBe(t0 + 2000);
    expect((await pause.throttled(info('5'))).effect).toBe('extended');
    expect((await pause.throttled(info('1'))).effect).toBe('within');
    expect(await pause.pausedUntil()).toBe(t0 + 5000);
    now = t0 + 5001;
    expect(await pause.pausedUntil()).toBeUndefined();
  });

  test('dead letters: add, list, drop', async () => {
    const ids = [
      await stack.deadLetters.add({ kind: 'push', source: 'webhook', reason: 'cluster test one', raw: '{"a":1}' }),
      await stack.deadLetters.add({ kind: 'push', source: 'webhook', reason: 'cluster test two', raw: '{"b":2}' }),
    ];
    expect((await stack.deadLetters.list()).map((l) => l.reason)).toEqual(
      expect.arrayContaining(['cluster test one', 'cluster test two']),
    );
    expect((await stack.deadLetters.budget()).usedBytes).toBeGreaterThan(0);
    const [again] = await stack.deadLetters.retry([ids[0]], {
      push: async () => Promise.reject(new Error('still refused')),
    });
    expect(again).toMatchObject({ ok: false, error: 'still refused' });
    expect(await stack.deadLetters.get(ids[0])).toMatchObject({ attempts: 1, lastError: 'still refused' });
    expect(await stack.deadLetters.drop(ids)).toBe(2);
    expect(await stack.deadLetters.count()).toBe(0);
    expect((await stack.deadLetters.budget()).usedBytes).toBe(0);
  });

  test('pending settings: add, resolve, and the sweep that reads records by name inside its script', async () => {
    const pending = new PendingSettingsStore(stack.redis, config.prefix);
    const at = Date.now();
    expect(
      await pending.add({ messageId: 'm-1', deviceId: 'dev-a', settings: { x: 1 }, sentAt: at, deadline: at + 1000 }),
    ).toBe('sent');
    expect(
      await pending.add({ messageId: 'm-2', deviceId: 'dev-a', settings: { x: 2 }, sentAt: at, deadline: at + 1000 }),
    ).toBe('sent');
    expect((await pending.resolve('m-1', 'dev-a', 'applied', at + 10)).changed).toBe(true);
    const swept = await pending.sweep(at + 5000);
    expect(swept.map((c) => [c.messageId, c.state])).toEqual([['m-2', 'timeout']]);
    expect((await pending.get('m-1'))?.state).toBe('applied');
  });

  test('heartbeat', async () => {
    const hb = new Heartbeat({ redis: stack.redis, prefix: config.prefix });
    await hb.beat(1_234_567);
    expect(await hb.last()).toBe(1_234_567);
  });

  test('presence: a reconnect seen twice queues one delayed re-read; an older observation changes nothing', async () => {
    const watch = new ReconnectWatch({
      redis: stack.redis,
      prefix: config.prefix,
      queue: stack.backfillQueue,
      settleMs: 3_600_000,
    });
    const t0 = Date.now() - 10 * 60_000;
    await watch.observe('dev-r', false, t0);
    const seen = await Promise.all([
      watch.observe('dev-r', true, t0 + 5 * 60_000),
      watch.observe('dev-r', true, t0 + 5 * 60_000),
    ]);
    expect(seen.filter(Boolean)).toHaveLength(2);
    await watch.observe('dev-r', false, t0 + 60_000);
    expect(await watch.presence('dev-r')).toEqual({ online: true, since: t0 + 5 * 60_000, seen: t0 + 5 * 60_000 });
    const delayed = (await stack.backfillQueue.getJobs(['delayed'])).filter((j) => j.data.reason === 'reconnect');
    expect(delayed.map((j) => [j.id, j.data.from, j.data.to])).toEqual([
      [reconnectJobId('dev-r', t0), t0, t0 + 5 * 60_000],
    ]);
    await delayed[0]!.remove();
  });

  test('webhook: pushes are stored by the producer and written by the ingest worker, exactly', async () => {
    webhook = await startStack({
      redisClusterNodes: nodes,
      sim: { devices: [{ id: 'dev-p', key: 'key-p', cadenceSec: 60 }] },
    });
    expect(webhook.prefix).toMatch(/^\{.*\}$/);
    const rows = Array.from({ length: 25 }, (_, i) => ({ time: FROM + i * 60_000, values: { temperature: 20 + i } }));
    for (let i = 0; i < rows.length; i += 10)
      expect((await webhook.sim!.pushData('dev-p', rows.slice(i, i + 10))).status).toBe(200);
    expect((await webhook.sim!.pushStatus('dev-p', 0)).status).toBe(200);
    const landed = await webhook.until(
      'pushed rows landed',
      () => webhook!.rows(`SELECT count("temperature") AS n FROM "device_data" WHERE "device_id" = 'dev-p'`),
      (r) => r[0]?.n === 25,
    );
    expect(landed[0].n).toBe(25);
    expect(await webhook.deadLetters.count()).toBe(0);
  });

  test('a command on the cluster says once that the prefix got a hash tag, and reads what the others wrote', async () => {
    const env = {
      ...testEnv({ simUrl: sim.url, prefix: plainPrefix, db: db.name, influxUrl: INFLUX_URL }),
      REDIS_CLUSTER_NODES: TEST_CLUSTER_NODES,
      LOG_LEVEL: 'info',
    };
    const res = await runCli(['status', '--json'], env);
    expect(res.code, res.stderr).toBe(0);
    const notices = res.stderr.split('\n').filter((l) => l.includes('EXPEED_PREFIX is used as'));
    expect(notices).toHaveLength(1);
    expect(notices[0]).toContain(`"{${plainPrefix}}"`);
    // the registry the stack wrote under the wrapped prefix is the one the command sees
    for (const d of DEVICES) expect(res.stdout).toContain(JSON.stringify(d.id));
  });

  test('every Lua script in src/ ran on the cluster above (checked, not assumed)', () => {
    const scripts = luaScriptsInSource();
    expect(scripts.size).toBeGreaterThanOrEqual(15);
    const missing = [...scripts].filter(([, text]) => !evaluated.has(text)).map(([where]) => where);
    expect(missing).toEqual([]);
  });

  test('every key written under the prefix lives in one slot, on one master', async () => {
    const direct = new Cluster(nodes, { lazyConnect: true });
    await direct.connect();
    try {
      expect(direct.nodes('master')).toHaveLength(3);
      const perMaster = await Promise.all(
        direct.nodes('master').map(async (node) => {
          const keys: string[] = [];
          let cursor = '0';
          do {
            const [next, batch] = await node.scan(
              cursor,
              'MATCH',
              `${config.prefix.replace(/[*?[\]\\]/g, '\\$&')}:*`,
              'COUNT',
              1000,
            );
            cursor = next;
            keys.push(...batch);
          } while (cursor !== '0');
          return keys;
        }),
      );
      const keys = perMaster.flat();
      // ours (registry, checkpoints, token, settings, heartbeat) and BullMQ's (backfill queue)
      expect(keys.length).toBeGreaterThan(20);
      expect(keys.some((k) => k.startsWith(`${config.prefix}:backfill:`))).toBe(true);
      expect(perMaster.filter((k) => k.length > 0)).toHaveLength(1);
      const slots = new Set(await Promise.all(keys.slice(0, 200).map((k) => direct.cluster('KEYSLOT', k))));
      expect(slots.size).toBe(1);
    } finally {
      direct.disconnect();
    }
  });
});

describe.skipIf(!clusterUp)('a password-protected cluster', () => {
  const PASSWORD = 'cl-pw-4711';
  let node: Awaited<ReturnType<typeof startRedisServer>>;

  beforeAll(async () => {
    // a private one-node cluster holding every slot, behind requirepass (announcing its address:
    // a node that never met another one reports none in CLUSTER SLOTS)
    node = await startRedisServer({
      password: PASSWORD,
      args: ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-announce-ip', '127.0.0.1'],
    });
    const admin = new Redis(node.url);
    try {
      await admin.call('CLUSTER', 'ADDSLOTSRANGE', '0', '16383');
      await until('the cluster to be ok', async () => /cluster_state:ok/.test(await admin.cluster('INFO')), {
        timeoutMs: 10_000,
        intervalMs: 100,
      });
    } finally {
      admin.disconnect();
    }
  });

  afterAll(async () => {
    await node?.close();
  });

  test('credentials come from REDIS_URL; a wrong one fails naming the nodes, never the password', async () => {
    const config = loadConfig({
      REDIS_URL: `redis://:${PASSWORD}@ignored-host:1`,
      REDIS_CLUSTER_NODES: `127.0.0.1:${node.port}`,
      EXPEED_PREFIX: 'pw',
    });
    const redis = createRedis(config);
    try {
      expect(isCluster(redis)).toBe(true);
      await redis.set(redisKey(config.prefix, 'probe'), 'yes');
      expect(await redis.get('{pw}:probe')).toBe('yes');
    } finally {
      await closeRedis(redis);
    }

    const wrong = loadConfig({
      REDIS_URL: 'redis://:not-the-pw-99@ignored-host:1',
      REDIS_CLUSTER_NODES: `127.0.0.1:${node.port}`,
    });
    const refused = createRedis(wrong, { maxRetriesPerRequest: 1 });
    try {
      const err = await waitForRedis(refused, redisAddress(wrong), 3000).then(
        () => undefined,
        (e: Error) => e,
      );
      expect(err).toBeInstanceOf(RedisUnreachableError);
      expect(err!.message).toContain(`cluster 127.0.0.1:${node.port}`);
      expect(err!.message).not.toContain('not-the-pw-99');
    } finally {
      await closeRedis(refused);
    }
  });
});
