import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startSimulator, type Simulator } from '../../src/simulator/index.js';
import { createApp, type App } from '../../src/app/app.js';
import { splitWindows } from '../../src/pull/windows.js';
import {
  clusterNodes,
  createTestDatabase,
  deleteRedisPrefix,
  hasRedisCluster,
  INFLUX_URL,
  influxRows,
  REDIS_URL,
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
  testEnv,
} from '../fixtures/pull-env.js';
import { loadConfig } from '../../src/base/load-config.js';

const HOUR = 3_600_000;
const FROM = Date.UTC(2026, 1, 1);
const TO = FROM + 2 * 24 * HOUR;
const DEVICES = [
  { id: 'kill-1', key: 'key-k1', cadenceSec: 30 },
  { id: 'kill-2', key: 'key-k2', cadenceSec: 40 },
];

function startWorker(env: Record<string, string>): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/worker-process.ts', 'backfill'], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      if (out.includes('ready')) resolve(child);
    });
    child.once('exit', (code) => reject(new Error(`worker exited early with ${code}`)));
  });
}

async function kill9(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

// the same on the test cluster when it answers (cluster.test.ts fails in CI when it does not)
const TARGETS = [
  { on: 'one Redis', cluster: false },
  ...((await hasRedisCluster()) ? [{ on: 'a Redis Cluster', cluster: true }] : []),
];

describe.each(TARGETS)('a worker killed with SIGKILL mid-walk, on $on', ({ cluster }) => {
  let sim: Simulator;
  let stack: App;
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  const children: ChildProcess[] = [];
  const prefix = testPrefix('kill');
  let env: Record<string, string>;

  beforeAll(async () => {
    sim = await startSimulator({
      platformKey: PLATFORM_KEY,
      secretKey: SECRET_KEY,
      devices: DEVICES,
      from: FROM,
      to: TO,
      seed: 3,
      boundaryRepeat: true,
    });
    sim.faults.latencyMs = 40; // slow pages, so that the kill lands mid-walk
    db = await createTestDatabase('kill');
    env = testEnv({
      simUrl: sim.url,
      prefix,
      db: db.name,
      influxUrl: INFLUX_URL,
      env: {
        EXPEED_PAGE_LIMIT: '150',
        EXPEED_BACKFILL_WINDOW: '1d',
        WORKER_CONCURRENCY: '2',
        ...(cluster ? { REDIS_CLUSTER_NODES: TEST_CLUSTER_NODES } : {}),
      },
    });
    stack = createApp(loadConfig(env), { logger: silentLogger(), scrubber: scrubber() });
    for (const d of DEVICES) await stack.registry.upsert(d, 'cli');
  });

  afterAll(async () => {
    for (const c of children) await kill9(c);
    await stack?.close();
    await sim?.close();
    await db?.drop();
    await deleteRedisPrefix(cluster ? `{${prefix}}` : prefix, cluster ? clusterNodes() : REDIS_URL);
  });

  test('loses nothing: the next worker resumes from the checkpoint, exact counts, checkpoint never ahead of the data', async () => {
    for (const d of DEVICES) await stack.backfills.enqueue({ deviceId: d.id, from: FROM, to: TO, reason: 'manual' });
    const first = await startWorker(env);
    children.push(first);

    // wait until the checkpoint of the first device has moved at least once, then kill -9
    await until(
      "the first device's checkpoint to move",
      async () => ((await stack.checkpoints.get('kill-1'))?.upTo ?? FROM) > FROM,
      { timeoutMs: 60_000, intervalMs: 20 },
    );
    await kill9(first);

    const active = await stack.backfillQueue.getJobCounts('active', 'completed');
    expect(active.active).toBeGreaterThan(0); // it really died mid-walk

    // the checkpoint is never ahead of the data: every row before it is in InfluxDB
    for (const d of DEVICES) {
      const cp = await stack.checkpoints.get(d.id);
      const upTo = cp!.upTo;
      const want = sim.rows(d.id, FROM, upTo).filter((r) => 'temp' in r.values).length;
      const [got] = await influxRows(
        db.name,
        `SELECT count("temp") AS c FROM device_data WHERE device_id = '${d.id}' AND time < ${upTo}ms`,
      );
      expect(Number(got?.c ?? 0)).toBe(want);
    }

    const second = await startWorker(env);
    children.push(second);
    const counts = await drained(stack.backfillQueue);
    expect(counts.failed).toBe(0);
    const windows = splitWindows(FROM, TO, 24 * HOUR, () => 8 * HOUR); // Asia/Shanghai midnights
    expect(counts.completed).toBe(DEVICES.length * windows.length);

    for (const d of DEVICES) {
      const expected = expectedTotals(sim, d.id, FROM, TO);
      const landed = await influxTotals(
        db.name,
        INFLUX_URL,
        d.id,
        Object.keys(expected),
        numericFields(sim, d.id, FROM, TO),
      );
      expect(landed).toEqual(expected);
      expect((await stack.checkpoints.get(d.id))?.upTo).toBe(TO);
    }
    // the recovered job resumed from its position: at most one page of each interrupted window is read twice
    // (each page after the first repeats one row; a walk may end with one empty page; the killed
    // worker had at most 2 jobs active, each with one page in flight and one fetched ahead)
    let pagesMax = 0;
    for (const d of DEVICES)
      for (const w of windows) pagesMax += Math.ceil(sim.rows(d.id, w.from, w.to).length / 149) + 1;
    expect(sim.stats.requests.history).toBeLessThanOrEqual(pagesMax + 2 * 2);
    expect(sim.stats.violations).toEqual([]);
    await kill9(second);
  });
});
