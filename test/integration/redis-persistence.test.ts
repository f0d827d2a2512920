import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { createRedis } from '../../src/base/redis.js';
import { RedisPersistenceWatch, readPersistence } from '../../src/ops/redis-persistence.js';
import { startService } from '../../src/app/service.js';
import { runCli } from '../helpers/cli.js';
import {
  clusterNodes,
  createTestDatabase,
  hasRedisCluster,
  INFLUX_URL,
  startRedisServer,
  testPrefix,
  until,
  type ChildServer,
} from '../helpers/services.js';
import { scrubber, testConfig, testEnv } from '../fixtures/pull-env.js';

/**
 * A Redis without persistence, or one that came back empty, resets the checkpoints, the token
 * count, the registry and the pushes not yet written: the service says so in one warning at start
 * and on every reconnect; with AOF on and the marker kept it says nothing; `status` shows the mode.
 * Each test runs against its own private redis-server.
 */

interface Line {
  level: number;
  msg: string;
  when?: string;
  persistence?: string;
  emptied?: boolean;
  resets?: string[];
}

function capture() {
  const lines: Line[] = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as Line) });
  const warnings = () =>
    lines.filter((l) => l.level === 40 && /Redis (has no persistence|came back empty)/.test(l.msg));
  return { logger, lines, warnings };
}

const RESETS = /checkpoints.*token count.*device registry.*pushes acknowledged but not yet written/;

const servers: ChildServer[] = [];
const connections: Redis[] = [];
async function redisServer(args: string[] = []): Promise<ChildServer> {
  const s = await startRedisServer({ args });
  servers.push(s);
  return s;
}
function connect(url: string): Redis {
  const r = createRedis(url);
  connections.push(r);
  return r;
}

/** Closes every client connection of a Redis but the caller's: each client reconnects. */
async function dropClients(url: string): Promise<void> {
  const admin = new Redis(url);
  try {
    await admin.client('KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
  } finally {
    admin.disconnect();
  }
}

afterEach(async () => {
  for (const c of connections.splice(0)) c.disconnect();
  for (const s of servers.splice(0)) await s.close();
});

describe('the persistence warning', () => {
  test('no persistence: the service warns once at start, naming what resets', async () => {
    const server = await redisServer();
    const db = await createTestDatabase('persist');
    const { logger, warnings } = capture();
    const config = testConfig({
      simUrl: 'http://127.0.0.1:9',
      prefix: testPrefix('persist'),
      db: db.name,
      influxUrl: INFLUX_URL,
      env: { REDIS_URL: server.url },
    });
    const service = await startService({ config, logger, scrubber: scrubber(), roles: new Set() });
    try {
      expect(warnings()).toHaveLength(1);
      const [w] = warnings();
      expect(w.when).toBe('start');
      expect(w.persistence).toBe('none');
      expect(w.emptied).toBe(false);
      expect(w.msg).toMatch(/no persistence \(AOF and RDB snapshots both off\)/);
      expect(w.msg).toMatch(RESETS);
    } finally {
      await service.close();
      await db.drop();
    }
  });

  test('Redis restarted without persistence: one warning on reconnect, saying it came back empty', async () => {
    const server = await redisServer();
    const redis = connect(server.url);
    const { logger, warnings } = capture();
    const watch = new RedisPersistenceWatch({ redis, prefix: testPrefix('persist'), logger });
    await watch.start();
    expect(warnings().map((w) => w.when)).toEqual(['start']);
    expect(await redis.exists(watch.markerKey)).toBe(1);

    await server.kill();
    await server.start();
    await until('the reconnect check', async () => watch.checks >= 2);
    await watch.idle();
    const after = warnings().filter((w) => w.when === 'reconnect');
    expect(after).toHaveLength(1);
    expect(after[0].emptied).toBe(true);
    expect(after[0].persistence).toBe('none');
    expect(after[0].msg).toMatch(/came back empty \(the marker key is gone\): these were reset/);
    expect(after[0].msg).toMatch(RESETS);
    // the marker is set again: the next reconnect knows this Redis again
    expect(await redis.exists(watch.markerKey)).toBe(1);
    watch.stop();
  });

  test('AOF on: no warning at start nor after a reconnect; the marker deleted: one warning on reconnect', async () => {
    const server = await redisServer(['--appendonly', 'yes']);
    const redis = connect(server.url);
    const { logger, warnings } = capture();
    const watch = new RedisPersistenceWatch({ redis, prefix: testPrefix('persist'), logger });
    const first = await watch.start();
    expect(first.persistence.mode).toBe('aof');
    expect(first.warned).toBe(false);

    await dropClients(server.url);
    await until('the reconnect check', async () => watch.checks >= 2);
    await watch.idle();
    expect(watch.last?.warned).toBe(false);
    expect(warnings()).toHaveLength(0);

    const probe = connect(server.url);
    await probe.del(watch.markerKey);
    await dropClients(server.url);
    await until('the second reconnect check', async () => watch.checks >= 3);
    await watch.idle();
    expect(warnings()).toHaveLength(1);
    expect(warnings()[0]).toMatchObject({ when: 'reconnect', emptied: true, persistence: 'aof' });
    expect(warnings()[0].msg).toMatch(RESETS);
    watch.stop();
  });

  test('the mode is read per node: RDB snapshots, AOF with RDB', async () => {
    const rdb = connect((await redisServer(['--save', '3600 1'])).url);
    const both = connect((await redisServer(['--save', '3600 1', '--appendonly', 'yes'])).url);
    expect((await readPersistence(rdb)).mode).toBe('rdb');
    const p = await readPersistence(both);
    expect(p.mode).toBe('aof+rdb');
    expect(p.nodes[0]).toMatchObject({ appendonly: 'yes', save: '3600 1' });
  });

  test('on a Redis Cluster every master is read, and the mode is the weakest of theirs', async ({ skip }) => {
    if (!(await hasRedisCluster())) {
      if (process.env.CI)
        throw new Error('the test Redis Cluster does not answer (scripts/setup.sh with WITH_TEST_TOOLS=1 starts it)');
      skip();
    }
    const cluster = createRedis({ redisUrl: 'redis://127.0.0.1:6379', redisClusterNodes: clusterNodes() });
    try {
      const p = await readPersistence(cluster);
      expect(p.nodes.map((n) => n.node).sort()).toEqual(
        clusterNodes()
          .map((n) => `${n.host}:${n.port}`)
          .sort(),
      );
      const order = ['none', 'unknown', 'rdb', 'aof', 'aof+rdb'];
      expect(p.mode).toBe(order[Math.min(...p.nodes.map((n) => order.indexOf(n.mode)))]);
      expect(p.nodes.every((n) => n.mode !== 'unknown')).toBe(true);
    } finally {
      cluster.disconnect();
    }
  });

  test('CONFIG refused (renamed away, as on managed Redis): the mode is unknown and no warning', async () => {
    const server = await redisServer(['--rename-command', 'CONFIG', '']);
    const redis = connect(server.url);
    const { logger, warnings, lines } = capture();
    const watch = new RedisPersistenceWatch({ redis, prefix: testPrefix('persist'), logger });
    const check = await watch.start();
    expect(check.persistence.mode).toBe('unknown');
    expect(check.persistence.nodes[0].error).toMatch(/unknown command/i);
    expect(warnings()).toHaveLength(0);
    expect(lines.some((l) => /persistence could not be read/.test(l.msg))).toBe(true);
    watch.stop();
  });
});

describe('status shows the persistence mode', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  beforeAll(async () => {
    db = await createTestDatabase('persiststatus');
  });
  afterAll(async () => {
    await db?.drop();
  });

  test('text and --json, AOF and none', async () => {
    const aof = await redisServer(['--appendonly', 'yes']);
    const none = await redisServer();
    const env = (url: string) =>
      testEnv({
        simUrl: 'http://127.0.0.1:9',
        prefix: testPrefix('persiststatus'),
        db: db.name,
        influxUrl: INFLUX_URL,
        env: { REDIS_URL: url },
      });
    const json = await runCli(['status', '--json'], env(aof.url));
    expect(json.stderr).toBe('');
    const report = JSON.parse(json.stdout) as {
      redisPersistence: { mode: string; nodes: Array<{ node: string; appendonly: string }> };
    };
    expect(report.redisPersistence.mode).toBe('aof');
    expect(report.redisPersistence.nodes).toEqual([
      expect.objectContaining({ node: `127.0.0.1:${aof.port}`, appendonly: 'yes', save: '' }),
    ]);

    const text = await runCli(['status'], env(none.url));
    expect(text.stdout).toMatch(/REDIS PERSISTENCE {2}NONE: a restart resets the checkpoints/);
    const textAof = await runCli(['status'], env(aof.url));
    expect(textAof.stdout).toMatch(/REDIS PERSISTENCE {2}AOF$/m);
  });
});
