/**
 * Re-read after a reconnect (EXPEED_RECONNECT_SETTLE): a device offline for 3 hours uploads its
 * buffer when it is back (rows added to the simulator's past, behind what was synced); a status push
 * and a status poll on two replicas both see it come back, one delayed re-read is queued; every
 * process is closed before the settle time ends (a restart), two fresh replicas' backfill workers
 * run the job once the device has been online that long, and the whole buffer lands, counted as
 * late rows.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Queue } from 'bullmq';
import { drained, scrubber, silentLogger, stackScheduler, startPullEnv, type PullEnv } from '../fixtures/pull-env.js';
import { influxRows } from '../helpers/services.js';
import { createApp, type App } from '../../src/app/app.js';
import { bullConnection } from '../../src/base/redis.js';
import { QUEUE, type IngestBatchJob } from '../../src/base/jobs.js';
import { LateRows } from '../../src/pull/lookback.js';
import { splitWindows } from '../../src/pull/windows.js';
import { zoneOffsetMs } from '../../src/platform/timestamp.js';
import { reconnectJobId, ReconnectWatch, RECONNECT_MIN_OFFLINE_MS } from '../../src/pull/reconnect.js';

const MINUTE = 60_000;
const NOW0 = Math.floor(Date.now() / MINUTE) * MINUTE;
const OFF = NOW0 - 3 * 60 * MINUTE;
const FROM = OFF - 5 * 60 * MINUTE;
const DEVICE = 'dev-0001';
const SETTLE_MS = 15_000;
/** the offline status push arrives 30 s after the device's last row */
const OFF_SEEN = OFF + 30_000;

describe('re-read after a reconnect', () => {
  let env: PullEnv;
  let ingest: Queue<IngestBatchJob>;
  const replicas: App[] = [];
  const replica = (): App => {
    const app = createApp(env.config, { logger: silentLogger(), scrubber: scrubber() });
    replicas.push(app);
    return app;
  };

  beforeAll(async () => {
    env = await startPullEnv({
      name: 'reconnect',
      sim: {
        devices: [{ id: DEVICE, key: 'key-0001', cadenceSec: 60, offline: [[OFF, NOW0]] }],
        from: FROM,
        to: NOW0,
        gapRate: 0,
      },
      env: { EXPEED_RECONNECT_SETTLE: `${SETTLE_MS / 1000}s`, EXPEED_LOOKBACK: '0' },
    });
    ingest = new Queue<IngestBatchJob>(QUEUE.ingest, { connection: bullConnection(env.app.redis), prefix: env.prefix });
    const worker = env.app.startBackfillWorker();
    await env.app.backfills.enqueue({ deviceId: DEVICE, from: FROM, to: NOW0, reason: 'manual' });
    expect((await drained(env.app.backfillQueue)).failed).toBe(0);
    await worker.close();
  }, 120_000);

  afterAll(async () => {
    await Promise.allSettled(replicas.map((a) => a.close()));
    await ingest?.close();
    await env?.close();
  });

  test('a device offline 3 hours lands fully after the settle time: one job across replicas, surviving a restart', async () => {
    const synced = await influxRows(
      env.db.name,
      `SELECT count(*) FROM device_data WHERE time >= ${OFF}ms AND time < ${NOW0}ms`,
    );
    expect(synced).toEqual([]);
    const field = Object.keys(env.sim.rows(DEVICE, FROM, FROM + MINUTE)[0]!.values)[0]!;
    const lastRow = env.sim.rows(DEVICE, FROM, OFF).at(-1)!.time;

    // replica 1 takes status pushes, replica 2 polls; the device went offline 3 hours ago (raw 1 = offline)
    const pushes = replica().startIngestWorker();
    const pollerApp = replica();
    const poller = pollerApp.startStatusWorker();
    await ingest.add('msg1', {
      pushes: [{ msgType: 1, receivedAt: OFF_SEEN, body: { device_id: DEVICE, device_status: 1 } }],
    });
    await drained(ingest);
    expect(
      await new ReconnectWatch({
        redis: env.app.redis,
        prefix: env.prefix,
        queue: env.app.backfillQueue,
        settleMs: SETTLE_MS,
      }).presence(DEVICE),
    ).toEqual({ online: false, since: OFF_SEEN, seen: OFF_SEEN });

    // back online: the platform receives the buffered 3 hours, a push and a poll both say online
    const buffer = Array.from({ length: 180 }, (_, i) => ({ time: OFF + i * MINUTE, values: { [field]: 1000 + i } }));
    env.sim.addRows(DEVICE, buffer);
    const onlineAt = Date.now();
    await Promise.all([
      ingest.add('msg1', {
        pushes: [{ msgType: 1, receivedAt: onlineAt, body: { device_id: DEVICE, device_status: 0 } }],
      }),
      pollerApp.statusQueue.add('poll', { deviceIds: [DEVICE] }),
    ]);
    await drained(ingest);
    await drained(pollerApp.statusQueue);
    const queued = (await env.app.backfillQueue.getJobs(['delayed', 'waiting', 'active', 'completed'])).filter(
      (j) => j.data.reason === 'reconnect',
    );
    expect(queued.map((j) => j.id)).toEqual([reconnectJobId(DEVICE, OFF_SEEN)]);
    const job = queued[0]!;
    expect(job.data.from).toBe(OFF_SEEN);
    const seenOnline = job.data.to;
    expect(seenOnline).toBeGreaterThanOrEqual(onlineAt);

    // a restart: every process closes before the settle time ends; the job waits in Redis
    await pushes.close();
    await poller.close();
    await Promise.all(replicas.splice(0).map((a) => a.close()));
    expect(await env.app.backfillQueue.getJobState(job.id!)).toBe('delayed');
    const historyBefore = env.sim.stats.requests.history ?? 0;

    // two fresh replicas' backfill workers: the job runs once, after the settle time
    const fresh = [replica(), replica()];
    const workers = fresh.map((a) => a.startBackfillWorker());
    const counts = await drained(env.app.backfillQueue);
    expect(counts.failed).toBe(0);
    await Promise.all(workers.map((w) => w.close()));
    const done = (await env.app.backfillQueue.getJob(job.id!))!;
    expect(done.processedOn).toBeGreaterThanOrEqual(seenOnline + SETTLE_MS);
    expect(done.attemptsMade).toBe(1);
    // from the device's last row before the offline push; per window (a local day) a page and the empty tail that proves its end
    const windows = splitWindows(lastRow, seenOnline, env.config.backfillWindowMs, (t) =>
      zoneOffsetMs(t, env.config.timezone),
    ).length;
    expect(done.returnvalue).toMatchObject({ from: lastRow, to: seenOnline, lateRows: 180 });
    expect(done.returnvalue.pages).toBeLessThanOrEqual(2 * windows);
    // the one job made every history request: no replica read the span a second time
    expect((env.sim.stats.requests.history ?? 0) - historyBefore).toBe(done.returnvalue.pages);

    const landed = await influxRows(
      env.db.name,
      `SELECT count("${field}") AS n, sum("${field}") AS s FROM device_data WHERE time >= ${OFF}ms AND time < ${NOW0}ms`,
    );
    expect(landed[0]).toMatchObject({ n: 180, s: buffer.reduce((n, r) => n + (r.values[field] as number), 0) });
    expect((await new LateRows(env.app.redis, env.prefix).all()).get(DEVICE)).toBe(180);
    const metrics = await Promise.all(
      fresh.map((a) => a.metrics.registry.getSingleMetricAsString('expeed_late_rows_total')),
    );
    const counted = metrics.map((m) =>
      Number(new RegExp(`expeed_late_rows_total\\{device_id="${DEVICE}"\\} (\\d+)`).exec(m)?.[1] ?? 0),
    );
    expect(counted.reduce((a, b) => a + b, 0)).toBe(180);
  }, 180_000);

  test('an offline span of at most a minute queues no re-read; a reconnect after more does, once', async () => {
    const watch = new ReconnectWatch({
      redis: env.app.redis,
      prefix: env.prefix,
      queue: env.app.backfillQueue,
      settleMs: 3_600_000,
    });
    const t0 = Date.now() - 30 * MINUTE;
    await watch.observe('dev-blip', false, t0);
    expect(await watch.observe('dev-blip', true, t0 + RECONNECT_MIN_OFFLINE_MS)).toBeUndefined();
    await watch.observe('dev-blip', false, t0 + 2 * MINUTE);
    // two replicas see the reconnect at once: both read the device offline, both add the same job id
    const other = new ReconnectWatch({
      redis: env.app.redis,
      prefix: env.prefix,
      queue: env.app.backfillQueue,
      settleMs: 3_600_000,
    });
    const both = await Promise.all([
      watch.observe('dev-blip', true, t0 + 4 * MINUTE),
      other.observe('dev-blip', true, t0 + 4 * MINUTE),
    ]);
    expect(both).toEqual(
      Array(2).fill({ deviceId: 'dev-blip', from: t0 + 2 * MINUTE, to: t0 + 4 * MINUTE, reason: 'reconnect' }),
    );
    // the same reconnect seen again (a replica, a retried job) adds nothing
    expect(await watch.observe('dev-blip', true, t0 + 5 * MINUTE)).toBeUndefined();
    const jobs = (await env.app.backfillQueue.getJobs(['delayed'])).filter((j) => j.data.deviceId === 'dev-blip');
    expect(jobs.map((j) => j.id)).toEqual([reconnectJobId('dev-blip', t0 + 2 * MINUTE)]);
    await jobs[0]!.remove();
    // a status slot drops the presence of ids not registered (dev-blip never was), keeps the registered device's
    const scheduler = stackScheduler(env.app, env.prefix, FROM, { statusIntervalMs: 5 * MINUTE });
    expect((await scheduler.fire('status', new Date())).ran).toBe(true);
    await scheduler.close();
    expect(await watch.presence('dev-blip')).toBeUndefined();
    expect((await watch.presence(DEVICE))?.online).toBe(true);
  });
});
