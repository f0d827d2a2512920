/**
 * Hourly rollups stay exact however data arrives: a multi-day backfill from the simulator, a burst
 * of pushes through the ingest worker, late rows into hours already rolled up, and a partial hour
 * that must wait until it has ended and settled. The reference is InfluxDB's own GROUP BY time(1h).
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { App } from '../../src/app/app.js';
import { RollupDispatcher } from '../../src/rollup/dispatcher.js';
import { DirtyHours } from '../../src/rollup/dirty-hours.js';
import type { OpenIngestQueue } from '../../src/push/server.js';
import { createRedis } from '../../src/base/redis.js';
import { type DataPush } from '../../src/base/jobs.js';
import { formatPlatformTime } from '../../src/platform/time-format.js';
import { deleteRedisPrefix, INFLUX_URL, influxRows, REDIS_URL, testPrefix } from '../helpers/services.js';
import { drained, silentLogger, startPullEnv, type PullEnv } from '../fixtures/pull-env.js';
import { rollupDiffs } from '../fixtures/rollup-check.js';

const HOUR = 3_600_000;
const MIN = 60_000;
const FROM = Date.UTC(2026, 2, 3); // 2026-03-03T00:00Z
const TO = FROM + 2 * 24 * HOUR;
const TZ = 'Asia/Shanghai';
const SETTLE = 5 * MIN;
const DEVICES = [
  { id: 'roll-a', key: 'key-ra', cadenceSec: 60 },
  { id: 'roll/b', key: 'key-rb', cadenceSec: 90 },
];

describe('hourly rollups', () => {
  let env: PullEnv;
  let stack: App;
  let db: PullEnv['db'];
  let ingestQueue: OpenIngestQueue;
  let dispatcher: RollupDispatcher;
  // the dirty set's clock: real time unless a test moves it
  let clock: number | undefined;
  const now = () => clock ?? Date.now();

  /** Dispatches and works off every settled hour, as the scheduler and workers would. */
  async function rollUp(): Promise<void> {
    for (let i = 0; i < 50; i++) {
      const jobs = await dispatcher.tick();
      if (jobs === 0) return;
      await drained(stack.rollup.queue);
    }
    throw new Error('settled hours keep coming back');
  }
  const push = (deviceId: string, rows: Array<{ time: number } & Record<string, unknown>>): DataPush => ({
    device_id: deviceId,
    data: rows.map(({ time, ...v }) => ({ timestamp: formatPlatformTime(time, TZ), ...v })),
  });

  beforeAll(async () => {
    env = await startPullEnv({
      name: 'roll',
      sim: { devices: DEVICES, from: FROM - 24 * HOUR, to: TO + 24 * HOUR, seed: 11, boundaryRepeat: true },
      env: { EXPEED_BACKFILL_WINDOW: '12h', EXPEED_PAGE_LIMIT: '1000', EXPEED_ROLLUP_SETTLE: '5m' },
      app: { rollupClock: now },
    });
    ({ app: stack, db } = env);
    ingestQueue = await stack.ingestQueue();
    stack.startIngestWorker();
    stack.startRollupWorker();
    dispatcher = new RollupDispatcher({
      dirty: stack.rollup.dirty,
      queue: stack.rollup.queue,
      settleMs: env.config.rollupSettleMs,
      logger: silentLogger(),
    });
  });

  afterAll(async () => {
    await env?.close();
  });

  test('a multi-day backfill, a burst of pushes and late rows: every hourly rollup equals GROUP BY time(1h) over raw', async () => {
    for (const d of DEVICES) await stack.backfills.enqueue({ deviceId: d.id, from: FROM, to: TO, reason: 'manual' });
    stack.startBackfillWorker();
    expect((await drained(stack.backfillQueue)).failed).toBe(0);

    // a burst of pushes: the day after the backfill, plus a boolean datapoint the pull never had
    const burst: DataPush[] = [];
    for (let k = 0; k < 120; k++) {
      const t = TO + k * 30_000;
      burst.push(
        push(DEVICES[k % 2].id, [
          { time: t, temperature: 20 + (k % 7) / 4, door: k % 3 === 0, mode: k % 5 ? 'eco' : 'auto' },
        ]),
      );
    }
    await ingestQueue.queue.addBulk(
      burst.map((p) => ({
        name: 'push',
        data: { pushes: [{ msgType: 2 as const, receivedAt: Date.now(), body: p }] },
      })),
    );
    expect((await drained(ingestQueue.queue)).failed).toBe(0);

    // nothing is due while the touches have not settled; then everything is
    expect(await stack.rollup.dirty.settled(SETTLE, 10_000)).toEqual([]);
    const touched = (await stack.rollup.dirty.backlog()).hours;
    expect(touched).toBeGreaterThanOrEqual(48 + 1); // every backfilled hour of each device, and the pushed hour
    clock = Date.now() + SETTLE;
    await rollUp();
    expect(await stack.rollup.dirty.backlog()).toEqual({ hours: 0, oldestDue: undefined });
    const first = await rollupDiffs(db.name, INFLUX_URL, FROM - HOUR, TO + 2 * HOUR);
    expect(first.diffs).toEqual([]);
    expect(first.hours).toBe(2 * 48 + 2); // both devices: 48 backfilled hours and the pushed hour
    expect(first.values).toBeGreaterThan(first.hours * 4);

    // a device uploads buffered data hours later, into an hour already rolled up
    const late = FROM + 5 * HOUR;
    const [before] = await influxRows(
      db.name,
      `SELECT * FROM "device_data_1h" WHERE "device_id" = 'roll-a' AND time = ${late}ms`,
    );
    expect(Object.keys(before).length).toBeGreaterThan(4); // rolled up from the backfill
    expect(before.door_count ?? null).toBeNull();
    const lateRows = Array.from({ length: 6 }, (_, i) => ({
      time: late + i * 10 * MIN + 17_000,
      temperature: -40 + i,
      door: i % 2 === 0,
    }));
    await ingestQueue.queue.add('push', {
      pushes: [{ msgType: 2, receivedAt: Date.now(), body: push('roll-a', lateRows) }],
    });
    expect((await drained(ingestQueue.queue)).failed).toBe(0);
    expect((await stack.rollup.dirty.backlog()).hours).toBe(1);
    clock = Date.now() + 2 * SETTLE;
    await rollUp();
    const [after] = await influxRows(
      db.name,
      `SELECT "door_count", "door_last", "temperature_count", "temperature_min" FROM "device_data_1h" WHERE "device_id" = 'roll-a' AND time = ${late}ms`,
    );
    expect(after).toMatchObject({
      door_count: 6,
      door_last: false,
      temperature_count: ((before.temperature_count as number | null) ?? 0) + 6,
      temperature_min: -40,
    });
    expect((await rollupDiffs(db.name, INFLUX_URL, FROM - HOUR, TO + 2 * HOUR)).diffs).toEqual([]);
  });

  test('a partial hour is not rolled up until it has ended and settled; a later touch recomputes it', async () => {
    const hour = TO + 10 * HOUR;
    clock = hour + 30 * MIN; // "now" is half-way through the hour
    const write = (minutes: number[], base: number) =>
      stack.writer.write(
        minutes.map((m, i) => ({
          measurement: 'device_data' as const,
          deviceId: 'roll-a',
          time: hour + m * MIN,
          fields: { temperature: base + i },
        })),
        { source: 'push' },
      );
    await write([1, 2, 29], 10);
    await rollUp();
    const rolled = () =>
      influxRows(
        db.name,
        `SELECT "temperature_count", "temperature_mean" FROM "device_data_1h" WHERE time = ${hour}ms`,
      );
    expect(await rolled()).toEqual([]);
    clock = hour + HOUR + SETTLE - 1; // ended, but not settled
    await rollUp();
    expect(await rolled()).toEqual([]);
    clock = hour + HOUR + SETTLE;
    await rollUp();
    expect(await rolled()).toEqual([{ time: hour, temperature_count: 3, temperature_mean: 11 }]);

    // a row of the same hour arriving later makes it dirty again; it is recomputed after settling
    clock = hour + 3 * HOUR;
    await write([59], 40);
    await rollUp();
    expect((await rolled())[0].temperature_count).toBe(3);
    clock = hour + 3 * HOUR + SETTLE;
    await rollUp();
    expect(await rolled()).toEqual([{ time: hour, temperature_count: 4, temperature_mean: 18.25 }]);
    expect((await rollupDiffs(db.name, INFLUX_URL, hour, hour + HOUR)).diffs).toEqual([]);
  });

  test('an hour whose raw rows were deleted by hand loses its rollup when recomputed', async () => {
    const hour = FROM + 7 * HOUR;
    await influxRows(
      db.name,
      `DELETE FROM "device_data" WHERE "device_id" = 'roll/b' AND time >= ${hour}ms AND time < ${hour + HOUR}ms`,
    );
    await stack.rollup.dirty.mark(new Map([['roll/b', [hour]]]), { manual: true });
    await rollUp();
    expect(
      await influxRows(db.name, `SELECT * FROM "device_data_1h" WHERE "device_id" = 'roll/b' AND time = ${hour}ms`),
    ).toEqual([]);
    expect((await rollupDiffs(db.name, INFLUX_URL, FROM - HOUR, TO + 2 * HOUR)).diffs).toEqual([]);
  });
});

describe('the dirty-hour set', () => {
  const prefix = testPrefix('dirty');
  const redis = createRedis(REDIS_URL);
  afterAll(async () => {
    await deleteRedisPrefix(prefix);
    await redis.quit();
  });

  test('an hour touched while it was being computed stays dirty; an untouched one is cleared', async () => {
    let t = Date.UTC(2026, 5, 1, 12);
    const dirty = new DirtyHours({ redis, prefix, now: () => t });
    const h1 = Date.UTC(2026, 4, 1, 3);
    const h2 = Date.UTC(2026, 4, 1, 4);
    await dirty.mark(new Map([['d:1', [h1 + 5, h2 + 10, h2 + 20]]]));
    t += SETTLE;
    const read = await dirty.settled(SETTLE, 100);
    expect(read.map((d) => [d.deviceId, d.hour])).toEqual([
      ['d:1', h1],
      ['d:1', h2],
    ]);
    // a touch in the same millisecond as the read still changes the score
    t -= SETTLE;
    await dirty.mark(new Map([['d:1', [h2]]]));
    expect(await dirty.clear(read)).toBe(1);
    expect(await dirty.count('d:1', [h1, h2])).toBe(1);
    t += SETTLE + 1;
    expect((await dirty.settled(SETTLE, 100)).map((d) => d.hour)).toEqual([h2]);
  });
});
