/**
 * Replicas on a real 3-master Redis Cluster: three `run --role worker` processes share a backfill,
 * two `run --role webhook` processes take pushes; one of each is killed with SIGKILL mid-run.
 * Every row the simulator holds and every acknowledged push lands, with one shared token.
 * (Not yet here: the `--role scheduler` replicas and their one-set-of-jobs-per-slot check.)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { loadConfig } from '../../src/base/config.js';
import { startSimulator, type Simulator } from '../../src/simulator/index.js';
import { createApp, type App } from '../../src/app/app.js';
import { isCluster } from '../../src/base/queues.js';
import { BIN } from '../helpers/cli.js';
import { clusterNodes, createTestDatabase, deleteRedisPrefix, freePort, hasRedisCluster, INFLUX_URL, influxRows, TEST_CLUSTER_NODES, testPrefix } from '../helpers/services.js';
import { drained, expectedTotals, influxTotals, numericFields, PLATFORM_KEY, SECRET_KEY, scrubber, silentLogger, testEnv } from '../fixtures/pull-env.js';

const clusterUp = await hasRedisCluster();
const HOUR = 3_600_000;
const FROM = Date.UTC(2026, 2, 1);
const TO = FROM + 2 * 24 * HOUR;
const DEVICES = Array.from({ length: 12 }, (_, i) => ({ id: `so-${i}`, key: `key-so-${i}`, cadenceSec: 60 + 15 * (i % 4) }));
const TOKEN = 'wh-scale-out-token';

function kill9(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGKILL');
  return exited;
}

describe.skipIf(!clusterUp)('replicas on a Redis Cluster: 3 workers, 2 webhooks, one of each killed', () => {
  let sim: Simulator;
  const pushSims: Simulator[] = [];
  let stack: App;
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let env: Record<string, string>;
  const children: ChildProcess[] = [];
  const prefix = testPrefix('so');

  const spawnRun = (role: string, extra: Record<string, string> = {}) => {
    const child = spawn(process.execPath, [BIN, 'run', '--role', role, '--ops-port', '0', '--shutdown-grace', '2s'], { env: { PATH: process.env.PATH ?? '', ...env, ...extra }, stdio: ['ignore', 'ignore', 'inherit'] });
    children.push(child);
    return child;
  };

  beforeAll(async () => {
    sim = await startSimulator({ platformKey: PLATFORM_KEY, secretKey: SECRET_KEY, devices: DEVICES, from: FROM, to: TO, seed: 5 });
    sim.faults.latencyMs = 20; // slow pages, so that the kill lands mid-walk
    db = await createTestDatabase('so');
    env = testEnv({
      simUrl: sim.url,
      prefix,
      db: db.name,
      influxUrl: INFLUX_URL,
      env: { REDIS_CLUSTER_NODES: TEST_CLUSTER_NODES, EXPEED_PAGE_LIMIT: '200', EXPEED_BACKFILL_WINDOW: '12h', WORKER_CONCURRENCY: '2', EXPEED_WEBHOOK_TOKEN: TOKEN, EXPEED_SCHEDULE_NIGHTLY: '', EXPEED_SCHEDULE_STATUS: '', EXPEED_SCHEDULE_GAPS: '', LOG_LEVEL: 'warn' },
    });
    stack = createApp(loadConfig(env), { logger: silentLogger(), scrubber: scrubber() });
    for (const d of DEVICES) await stack.registry.upsert(d, 'cli');
  });

  afterAll(async () => {
    for (const c of children) await kill9(c);
    for (const s of pushSims) await s.close();
    await stack?.close();
    await sim?.close();
    await db?.drop();
    await deleteRedisPrefix(`{${prefix}}`, clusterNodes());
  });

  test('every row and every acknowledged push lands; one token call', async () => {
    for (const d of DEVICES) await stack.backfills.enqueue({ deviceId: d.id, from: FROM, to: TO, reason: 'manual' });
    const workers = [spawnRun('worker'), spawnRun('worker'), spawnRun('worker')];
    const ports = [await freePort(), await freePort()];
    const hooks = ports.map((port) => spawnRun('webhook', { WEBHOOK_HOST: '127.0.0.1', WEBHOOK_PORT: String(port) }));
    for (const [i, port] of ports.entries()) {
      const url = `http://127.0.0.1:${port}/webhook`;
      const end = Date.now() + 60_000;
      // any answer means it listens (the root path is a plain 404, not a refused handshake)
      while (Date.now() < end && !(await fetch(`http://127.0.0.1:${port}/`).then(() => true, () => false))) await new Promise((r) => setTimeout(r, 200));
      pushSims.push(await startSimulator({ platformKey: PLATFORM_KEY, secretKey: SECRET_KEY, devices: [{ id: `push-${i}`, key: `key-push-${i}`, cadenceSec: 60 }], from: 0, to: 0, gapRate: 0, pushUrl: url, webhookToken: TOKEN }));
    }

    // pushes to both webhooks; the second is killed half-way (between pushes: what it acknowledged is all it got)
    const acked = [0, 0];
    for (let batch = 0; batch < 8; batch++) {
      if (batch === 4) await kill9(hooks[1]);
      for (const i of [0, 1]) {
        const rows = Array.from({ length: 10 }, (_, r) => ({ time: FROM + (batch * 10 + r) * 60_000, values: { level: batch * 10 + r } }));
        const answer = await pushSims[i].pushData(`push-${i}`, rows).catch(() => undefined);
        if (answer?.status === 200 && JSON.parse(answer.body).result_code === 0) acked[i] += 10;
      }
    }
    expect(acked).toEqual([80, 40]);

    // one worker dies mid-walk: its jobs are recovered by the others once their locks lapse
    const end = Date.now() + 60_000;
    while (Date.now() < end && (await stack.backfillQueue.getJobCounts('completed')).completed < 3) await new Promise((r) => setTimeout(r, 50));
    await kill9(workers[0]);
    expect((await stack.backfillQueue.getJobCounts('active')).active).toBeGreaterThan(0); // it died mid-run
    const counts = await drained(stack.backfillQueue, 170_000);
    expect(counts.failed).toBe(0);

    for (const d of DEVICES) {
      const expected = expectedTotals(sim, d.id, FROM, TO);
      expect(await influxTotals(db.name, INFLUX_URL, d.id, Object.keys(expected), numericFields(sim, d.id, FROM, TO))).toEqual(expected);
    }
    for (const i of [0, 1]) {
      const q = `SELECT count("level") AS n FROM "device_data" WHERE "device_id" = 'push-${i}'`;
      const stop = Date.now() + 60_000;
      let rows = await influxRows(db.name, q);
      while (Date.now() < stop && Number(rows[0]?.n ?? 0) < acked[i]) {
        await new Promise((r) => setTimeout(r, 200));
        rows = await influxRows(db.name, q);
      }
      expect(Number(rows[0]?.n ?? 0)).toBe(acked[i]);
    }
    expect(sim.stats.tokenCalls).toBeLessThanOrEqual(2);
    // the worker processes counted their token call where this test reads it: on the cluster
    expect(isCluster(stack.redis)).toBe(true);
    expect((await stack.tokens.usage()).calls).toBe(sim.stats.tokenCalls);
    expect(sim.stats.violations).toEqual([]);
  }, 240_000);
});
