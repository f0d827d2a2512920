import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { startSimulator, type Simulator } from '../../src/simulator/index.js';
import { createApp } from '../../src/app/app.js';
import type { Scheduler } from '../../src/pull/scheduler.js';
import { Heartbeat } from '../../src/pull/heartbeat.js';
import { catchUpOnStart } from '../../src/pull/catch-up.js';
import {
  createTestDatabase,
  deleteRedisPrefix,
  INFLUX_URL,
  influxRows,
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
  stackScheduler,
  testConfig,
} from '../fixtures/pull-env.js';

const HOUR = 3_600_000;
const DEVICES = [
  { id: 's-1', key: 'key-s1', cadenceSec: 60 },
  { id: 's-2', key: 'key-s2', cadenceSec: 90 },
];

describe('schedules and catch-up', () => {
  let sim: Simulator;
  const now = Date.now();
  const cleanups: Array<() => Promise<unknown>> = [];

  beforeAll(async () => {
    sim = await startSimulator({
      platformKey: PLATFORM_KEY,
      secretKey: SECRET_KEY,
      devices: DEVICES,
      from: now - 48 * HOUR,
      to: now + HOUR,
      seed: 5,
    });
  });

  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  afterAll(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
    await sim?.close();
  });

  /**
   * A test's own prefix, database and pull stack over the shared simulator: no test sees another's
   * jobs, workers, checkpoints, claimed slots or points, so each passes alone and in any order.
   */
  async function fresh() {
    const prefix = testPrefix('sched');
    cleanups.push(() => deleteRedisPrefix(prefix));
    const db = await createTestDatabase('sched');
    cleanups.push(() => db.drop());
    const config = testConfig({
      simUrl: sim.url,
      prefix,
      db: db.name,
      influxUrl: INFLUX_URL,
      env: { EXPEED_BACKFILL_WINDOW: '6h' },
    });
    const stack = createApp(config, { logger: silentLogger(), scrubber: scrubber() });
    cleanups.push(() => stack.close());
    for (const d of DEVICES) await stack.registry.upsert(d, 'cli');
    const scheduler = (schedules: { nightly?: string; status?: string; gaps?: string }): Scheduler => {
      const s = stackScheduler(stack, prefix, now - 24 * HOUR, { schedules });
      cleanups.push(() => s.close());
      return s;
    };
    return { prefix, db, stack, scheduler };
  }

  test('two schedulers firing the same nightly slot create one set of jobs', async () => {
    const { stack, scheduler } = await fresh();
    const a = scheduler({});
    const b = scheduler({});
    const slot = new Date(Math.floor(now / 60_000) * 60_000);
    const [ra, rb] = await Promise.all([a.fire('nightly', slot), b.fire('nightly', slot)]);
    expect([ra.ran, rb.ran].sort()).toEqual([false, true]);
    const ran = ra.ran ? ra : rb;
    // 24 h from EXPEED_BACKFILL_START on a 6 h grid: 4 or 5 windows per device
    const jobs = await stack.backfillQueue.getJobs(['waiting']);
    expect(jobs).toHaveLength(ran.jobs);
    for (const d of DEVICES) {
      const mine = jobs.filter((j) => j.data.deviceId === d.id).sort((x, y) => x.data.from - y.data.from);
      expect(mine[0].data.from).toBe(now - 24 * HOUR);
      expect(mine[mine.length - 1].data.to).toBe(slot.getTime());
      for (let i = 1; i < mine.length; i++) expect(mine[i].data.from).toBe(mine[i - 1].data.to);
      expect(mine.every((j) => j.data.reason === 'nightly')).toBe(true);
    }
    // firing the same slot again later does nothing either
    expect((await a.fire('nightly', slot)).ran).toBe(false);
  });

  test('status schedule on real cron: one set of jobs per slot however many schedulers run, later slots skipped while it waits', async () => {
    const { prefix, stack, scheduler } = await fresh();
    const a = scheduler({ status: '* * * * * *' });
    const b = scheduler({ status: '* * * * * *', nightly: undefined });
    expect(a.active()).toEqual([]);
    a.start();
    b.start();
    expect(a.active()).toEqual(['status']); // the others have no expression: disabled
    const claimedSlots = async () => (await stack.redis.keys(`${prefix}:schedule:status:*`)).length;
    await until('three status slots claimed', async () => (await claimedSlots()) >= 3, {
      timeoutMs: 20_000,
      intervalMs: 100,
    });
    await a.close();
    await b.close();
    expect(await claimedSlots()).toBeGreaterThanOrEqual(3);
    // no worker runs: the first slot's chunk still waits, so every later slot was skipped
    const jobs = await stack.statusQueue.getJobs(['waiting']);
    expect(jobs).toHaveLength(1);
    expect(jobs[0].id).toMatch(/^status\|\d+\|0$/);
    expect(jobs[0].data.deviceIds?.sort()).toEqual(DEVICES.map((d) => d.id));
  });

  test('status poll writes device_status with source=poll', async () => {
    const { db, stack } = await fresh();
    sim.setOnline('s-1', true);
    sim.setOnline('s-2', false);
    cleanups.push(async () => sim.setOnline('s-2', true));
    await stack.statusQueue.add('poll', {});
    stack.startStatusWorker();
    await drained(stack.statusQueue);
    const rows = await influxRows(db.name, `SELECT online, raw_status, source FROM device_status GROUP BY device_id`);
    const byDevice = Object.fromEntries(rows.map((r) => [r.device_id, r]));
    expect(byDevice['s-1']).toMatchObject({ online: true, raw_status: 1, source: 'poll' });
    expect(byDevice['s-2']).toMatchObject({ online: false, raw_status: 0, source: 'poll' });
  });

  test('restart after an outage: the missed window is queued once for every device and lands', async () => {
    const { prefix, db, stack } = await fresh();
    const heartbeat = new Heartbeat({ redis: stack.redis, prefix, intervalMs: 30_000 });
    await heartbeat.beat(now - 2 * HOUR); // the service stopped two hours ago
    const opts = {
      redis: stack.redis,
      prefix,
      heartbeat,
      registry: stack.registry,
      backfills: stack.backfills,
      thresholdMs: 15 * 60_000,
      now: () => now,
    };
    const [r1, r2] = await Promise.all([catchUpOnStart(opts), catchUpOnStart(opts)]);
    const did = r1.window ? r1 : r2;
    expect([r1.window, r2.window].filter(Boolean)).toHaveLength(1); // two processes starting together: one catch-up
    expect(did.downMs).toBe(2 * HOUR);
    expect(did.window).toEqual({ from: now - 2 * HOUR - 30_000, to: now });
    expect(did.devices).toBe(2);
    expect(await heartbeat.last()).toBe(now);

    stack.startBackfillWorker();
    const counts = await drained(stack.backfillQueue);
    expect(counts.failed).toBe(0);
    for (const d of DEVICES) {
      const expected = expectedTotals(sim, d.id, now - 2 * HOUR - 30_000, now);
      expect(Object.values(expected)[0].count).toBeGreaterThan(10);
      const landed = await influxTotals(
        db.name,
        INFLUX_URL,
        d.id,
        Object.keys(expected),
        numericFields(sim, d.id, now - 3 * HOUR, now),
      );
      expect(landed).toEqual(expected);
    }
    // started again soon after: nothing to catch up
    const again = await catchUpOnStart({ ...opts, now: () => now + 60_000 });
    expect(again.window).toBeUndefined();
    expect(again.downMs).toBe(60_000);
  });
});
