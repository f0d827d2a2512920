/**
 * The nightly lookback (EXPEED_LOOKBACK): rows the platform received late, before a device's
 * checkpoint — a 5-minute block of a 10 s device and single rows between rows already held — land
 * with the next nightly slot, no manual step; they are counted (per device in Redis and in
 * expeed_late_rows_total), rows already held are not rewritten, their hours are marked dirty, and
 * two worker replicas on the queue do the work once.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { drained, stackScheduler, startPullEnv, type PullEnv } from '../fixtures/pull-env.js';
import { influxRows } from '../helpers/services.js';
import { LateRows } from '../../src/pull/lookback.js';
import { VerifyLedger } from '../../src/pull/verify-run.js';

const HOUR = 3_600_000;
const T2 = Math.floor(Date.now() / HOUR) * HOUR - HOUR;
const T1 = T2 - 6 * HOUR;
const FROM = T1 - 12 * HOUR;
const DEVICE = 'dev-0001';
const BLOCK = [T1 - 3 * HOUR, T1 - 3 * HOUR + 5 * 60_000] as [number, number];

describe('nightly lookback', () => {
  let env: PullEnv;

  beforeAll(async () => {
    env = await startPullEnv({
      name: 'lookback',
      sim: {
        devices: [{ id: DEVICE, key: 'key-0001', cadenceSec: 10, offline: [BLOCK] }],
        from: FROM,
        to: T2,
        gapRate: 0,
      },
      env: { EXPEED_LOOKBACK: '1d' },
    });
  }, 120_000);

  afterAll(async () => {
    await env?.close();
  });

  test('late rows before the checkpoint land after the next nightly, counted once across two workers', async () => {
    const scheduler = stackScheduler(env.app, env.prefix, FROM, { lookbackMs: env.config.lookbackMs });
    const workers = [env.app.startBackfillWorker(), env.app.startBackfillWorker()];
    await scheduler.fire('nightly', new Date(T1));
    await drained(env.app.backfillQueue);
    expect((await env.app.checkpoints.get(DEVICE))?.upTo).toBe(T1);
    const before = await influxRows(
      env.db.name,
      `SELECT count(*) FROM device_data WHERE time >= ${BLOCK[0]}ms AND time < ${BLOCK[1]}ms`,
    );
    expect(before).toEqual([]);

    // the platform receives the device's buffered block and two single rows between held rows
    const field = Object.keys(env.sim.rows(DEVICE, FROM, FROM + 60_000)[0].values)[0];
    const block = Array.from({ length: 30 }, (_, i) => ({ time: BLOCK[0] + i * 10_000, values: { [field]: 100 + i } }));
    const singles = [T1 - 5 * HOUR + 3_000, T1 - HOUR + 7_000].map((time) => ({ time, values: { [field]: 7.5 } }));
    env.sim.addRows(DEVICE, [...block, ...singles]);
    await env.app.redis.del(`${env.prefix}:rollup:dirty`);
    const historyBefore = env.sim.stats.requests.history ?? 0;

    const slot = await scheduler.fire('nightly', new Date(T2));
    // one nightly window per day crossed, and one lookback window per day of the 1-day lookback
    expect(slot.jobs).toBeGreaterThanOrEqual(2);
    const counts = await drained(env.app.backfillQueue);
    expect(counts.failed).toBe(0);
    await Promise.all(workers.map((w) => w.close()));
    await scheduler.close();

    const landed = await influxRows(
      env.db.name,
      `SELECT count("${field}") AS n FROM device_data WHERE time >= ${BLOCK[0]}ms AND time < ${BLOCK[1]}ms`,
    );
    expect(Number(landed[0]?.n)).toBe(30);
    for (const s of singles)
      expect(await influxRows(env.db.name, `SELECT "${field}" FROM device_data WHERE time = ${s.time}ms`)).toEqual([
        { time: s.time, [field]: 7.5 },
      ]);
    // counted once, though two workers took jobs: 30 + 2, nothing already held
    expect((await new LateRows(env.app.redis, env.prefix).all()).get(DEVICE)).toBe(32);
    const metric = await env.app.metrics.registry.getSingleMetricAsString('expeed_late_rows_total');
    expect(metric).toContain(`expeed_late_rows_total{device_id="${DEVICE}"} 32`);
    // the late rows' hours are marked for the rollups; an hour without late rows is not (the nightly window's hours are)
    expect(await env.app.rollup.dirty.count(DEVICE, [BLOCK[0], T1 - 5 * HOUR, T1 - HOUR])).toBe(3);
    expect(await env.app.rollup.dirty.count(DEVICE, [T1 - 2 * HOUR])).toBe(0);
    // the lookback day was read once, not once per worker: 8640 rows a day at 6000 a page
    const historyRequests = (env.sim.stats.requests.history ?? 0) - historyBefore;
    expect(historyRequests).toBeLessThan(12);
  }, 180_000);

  test('the scheduled verification (two workers) finds an extra point and a changed value, repairs them, and records its totals once', async () => {
    const field = Object.keys(env.sim.rows(DEVICE, FROM, FROM + 60_000)[0].values)[0];
    const held = env.sim.rows(DEVICE, T1 - 4 * HOUR, T1 - 3.5 * HOUR).find((r) => field in r.values)!;
    const lines = [
      `device_data,device_id=${DEVICE} ${field}=-1 ${held.time}`,
      `device_data,device_id=${DEVICE} ${field}=5 ${T1 - 2 * HOUR + 1}`,
    ];
    const res = await fetch(`${env.config.influx.url}/write?db=${env.db.name}&precision=ms`, {
      method: 'POST',
      body: lines.join('\n'),
    });
    expect(res.status).toBe(204);
    const scheduler = stackScheduler(env.app, env.prefix, FROM, { lookbackMs: 0 });
    const workers = [env.app.startBackfillWorker(), env.app.startBackfillWorker()];
    const slot = await scheduler.fire('verify', new Date(T2));
    expect(slot.jobs).toBeGreaterThanOrEqual(7);
    const counts = await drained(env.app.backfillQueue);
    expect(counts.failed).toBe(0);
    await Promise.all(workers.map((w) => w.close()));
    await scheduler.close();
    const last = await new VerifyLedger(env.app.redis, env.prefix).last();
    // 7 days of hours: the simulator's 18 hours with rows and the empty ones are equal, the two changed hours repaired
    expect(last).toMatchObject({
      at: T2,
      devices: 1,
      from: T2 - 7 * 86_400_000,
      to: T2,
      missing: 0,
      extra: 0,
      differing: 0,
      repaired: 2,
    });
    expect(last!.equal).toBe(7 * 24 - 2);
    expect(await influxRows(env.db.name, `SELECT * FROM device_data WHERE time = ${T1 - 2 * HOUR + 1}ms`)).toEqual([]);
    const metric = await env.app.metrics.registry.getSingleMetricAsString('expeed_verify_hours_total');
    expect(metric).toContain('expeed_verify_hours_total{result="repaired"} 2');
  }, 180_000);

  test('a scheduled verify job for a device no longer registered ends at once (one attempt), naming the device', async () => {
    const worker = env.app.startBackfillWorker();
    const [queued] = await env.app.backfills.enqueue({
      deviceId: 'dev-gone',
      from: T1,
      to: T1 + HOUR,
      reason: 'verify',
    });
    const counts = await drained(env.app.backfillQueue);
    await worker.close();
    expect(counts.failed).toBe(1);
    const job = await env.app.backfillQueue.getJob(queued!.jobId);
    // not retried: the default job options allow 40 attempts
    expect(job?.attemptsMade).toBe(1);
    expect(job?.failedReason).toBe(
      `device dev-gone window ${new Date(T1).toISOString()}..${new Date(T1 + HOUR).toISOString()}: device "dev-gone" is not registered, so its key is unknown: add it with "expeed-sync devices add dev-gone --key KEY"`,
    );
  }, 60_000);
});
