import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import type { Worker } from 'bullmq';
import type { Simulator } from '../../src/simulator/index.js';
import type { App } from '../../src/app/app.js';
import type { Scheduler, SchedulerOptions } from '../../src/pull/scheduler.js';
import { StatusPushLog } from '../../src/pull/status-slot.js';
import { Ingestor } from '../../src/push/ingest.js';
import { StatusPoller } from '../../src/pull/status-poll.js';
import type { PlatformClient } from '../../src/platform/api.js';
import { influxRows } from '../helpers/services.js';
import { drained, silentLogger, stackScheduler, startPullEnv, type PullEnv } from '../fixtures/pull-env.js';

const HOUR = 3_600_000;
const DEVICES = Array.from({ length: 5 }, (_, i) => ({ id: `p-${i + 1}`, key: `key-p${i + 1}`, cadenceSec: 300 }));

describe('status polls at scale', () => {
  let env: PullEnv;
  let sim: Simulator;
  let stack: App;
  let db: PullEnv['db'];
  let prefix: string;
  const now = Date.now();
  const schedulers: Scheduler[] = [];
  const workers: Worker[] = [];
  let skipped = 0;

  beforeAll(async () => {
    env = await startPullEnv({
      name: 'spoll',
      sim: { devices: DEVICES, from: now - 2 * HOUR, to: now + HOUR, seed: 11 },
    });
    ({ sim, app: stack, db, prefix } = env);
  });

  afterEach(async () => {
    for (const w of workers.splice(0)) await w.close();
    for (const s of schedulers.splice(0)) await s.close();
    await stack.statusQueue.obliterate({ force: true });
    await stack.redis.del(`${prefix}:status:pushed`, `${prefix}:status:cursor`);
  });

  afterAll(async () => {
    await env?.close();
  });

  function scheduler(extra: Partial<SchedulerOptions> = {}): Scheduler {
    const s = stackScheduler(stack, prefix, now - HOUR, {
      schedules: { status: '*/5 * * * *' },
      onStatusSkipped: () => skipped++,
      ...extra,
    });
    schedulers.push(s);
    return s;
  }

  function worker(platform: Pick<PlatformClient, 'deviceStatus'> = stack.platform): Worker {
    const w = stack.startStatusWorker({ platform });
    workers.push(w);
    return w;
  }

  const polledIds = async (): Promise<string[]> =>
    (await stack.statusQueue.getJobs(['waiting'])).flatMap((j) => j.data.deviceIds ?? []).sort();

  test('a device whose answer is lost costs one extra device_status call, not a poll of the whole chunk', async () => {
    let failed = false;
    const flaky: Pick<PlatformClient, 'deviceStatus'> = {
      deviceStatus: async (d, o) => {
        const answer = await stack.platform.deviceStatus(d, o);
        // the call reached the platform, the answer did not reach us (once)
        if (d.id === 'p-3' && !failed) {
          failed = true;
          throw Object.assign(new Error('socket hang up'), { retryable: true });
        }
        return answer;
      },
    };
    const before = sim.stats.requests.device_status ?? 0;
    const slot = await scheduler().fire('status', new Date(now - (now % 300_000)));
    expect(slot.jobs).toBe(1);
    worker(flaky);
    const counts = await drained(stack.statusQueue);
    expect(counts.failed).toBe(0);
    expect(failed).toBe(true);
    expect((sim.stats.requests.device_status ?? 0) - before).toBe(DEVICES.length + 1);
    const rows = await influxRows(
      db.name,
      `SELECT online, source FROM device_status WHERE time >= ${(slot.slot - HOUR) * 1e6} GROUP BY device_id`,
    );
    expect(rows.map((r) => r.device_id).sort()).toEqual(DEVICES.map((d) => d.id));
  }, 30_000);

  test('a job polls its devices concurrently, up to its bound', async () => {
    let inFlight = 0;
    let most = 0;
    const counting: Pick<PlatformClient, 'deviceStatus'> = {
      deviceStatus: async (d, o) => {
        most = Math.max(most, ++inFlight);
        try {
          return await stack.platform.deviceStatus(d, o);
        } finally {
          inFlight--;
        }
      },
    };
    const result = await new StatusPoller({
      platform: counting,
      writer: stack.writer,
      registry: stack.registry,
      concurrency: 3,
    }).poll({ deviceIds: DEVICES.map((d) => d.id) });
    expect(result.polled).toBe(5);
    expect(most).toBe(3);
  });

  test('a slot is skipped (and counted) while the previous slot is still being polled', async () => {
    const s = scheduler();
    const base = now - (now % 300_000) + 3_000_000;
    skipped = 0;
    expect((await s.fire('status', new Date(base))).jobs).toBe(1);
    expect((await s.fire('status', new Date(base + 300_000))).jobs).toBe(0);
    expect(skipped).toBe(1);
    expect((await stack.statusQueue.getJobs(['waiting'])).map((j) => j.id)).toEqual([`status|${base}|0`]);
    worker();
    await drained(stack.statusQueue);
    expect((await s.fire('status', new Date(base + 600_000))).jobs).toBe(1);
    expect(skipped).toBe(1);
  });

  test('a device whose status came by push within the interval is not polled', async () => {
    const base = now - (now % 300_000) + 6_000_000;
    const ingestor = new Ingestor({
      writer: stack.writer,
      deadLetters: stack.deadLetters,
      settings: { resolve: () => Promise.reject(new Error('no settings in this test')) },
      parseTime: Number,
      pushOnlineCode: 0,
      logger: silentLogger(),
      statusPushes: new StatusPushLog(stack.redis, prefix),
    });
    await ingestor.ingest({ msgType: 1, receivedAt: base - 60_000, body: { device_id: 'p-1', device_status: 0 } });
    await ingestor.ingest({ msgType: 1, receivedAt: base - 301_000, body: { device_id: 'p-2', device_status: 0 } });
    // an older push ingested later (jobs run concurrently) does not hide the newer arrival
    await ingestor.ingest({ msgType: 1, receivedAt: base - 900_000, body: { device_id: 'p-1', device_status: 0 } });
    const r = await scheduler({ statusIntervalMs: 300_000 }).fire('status', new Date(base));
    expect(r.jobs).toBe(1);
    expect(await polledIds()).toEqual(['p-2', 'p-3', 'p-4', 'p-5']);
  });

  test('a fleet the rate cannot cover in one interval is announced at start and polled round-robin', async () => {
    const warnings: string[] = [];
    const logger = { ...silentLogger(), warn: (_: unknown, msg?: string) => void warnings.push(String(msg)) };
    // 1 request/s over a 2 s interval: 2 devices a slot, so 5 devices need ceil(5 / 2) = 3 slots
    const s = scheduler({
      statusRatePerSecond: 1,
      statusIntervalMs: 2000,
      schedules: { status: '0 0 1 1 *' },
      logger: logger as never,
    });
    expect(await s.statusCapacity()).toMatchObject({ devices: 5, perInterval: 2, slotsPerRound: 3 });
    s.start();
    await expect
      .poll(() => warnings.join('\n'))
      .toContain('5 devices cannot be polled within one interval at 1 requests/s (2 calls per 2 s)');
    expect(warnings.join('\n')).toContain('every device at least every 3 intervals');
    const seen: string[] = [];
    const base = now - (now % 300_000) + 9_000_000;
    for (let k = 0; k < 3; k++) {
      expect((await s.fire('status', new Date(base + k * 2000))).jobs).toBe(1);
      const ids = await polledIds();
      expect(ids).toHaveLength(2);
      seen.push(...ids);
      await stack.statusQueue.obliterate({ force: true }); // as if polled
    }
    expect(new Set(seen)).toEqual(new Set(DEVICES.map((d) => d.id)));
  });
});
