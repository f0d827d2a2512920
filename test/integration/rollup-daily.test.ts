/**
 * The daily tier end to end: rows arrive through the app's writer (backfilled, pushed, late, a
 * dead-letter retry; the webhook path is rollup-daily-push.test.ts), the service's dispatcher and
 * rollup worker roll up their hours and then their days, and every `device_data_1d` row equals InfluxDB's own `GROUP BY time(1d) tz(zone)`
 * over the raw rows — count, sum, min, max, last and the mean exactly (the values are quarters, so
 * every sum is exact), also for a device whose cadence changes within the day. Zones: Asia/Shanghai
 * (no DST), Europe/Berlin (days of 23 and 25 hours) and Asia/Kolkata (midnight at :30 UTC: the
 * days come from the raw rows).
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Worker } from 'bullmq';
import { createApp, type App } from '../../src/app/app.js';
import type { SinkPoint } from '../../src/influx/api.js';
import { loadConfig } from '../../src/base/load-config.js';
import { retryHandlers } from '../../src/app/retry-handlers.js';
import {
  createTestDatabase,
  deleteRedisPrefix,
  INFLUX_URL,
  influxRows,
  testPrefix,
  until,
} from '../helpers/services.js';
import { scrubber, silentLogger, testEnv } from '../fixtures/pull-env.js';
import { dayDiffs } from '../fixtures/rollup-check.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** A service-like app: its dispatcher and a rollup worker in this process, hours due at once. */
async function rollupApp(stem: string, timezone: string) {
  const db = await createTestDatabase(stem);
  const prefix = testPrefix(stem);
  const env = testEnv({
    simUrl: 'http://127.0.0.1:9',
    prefix,
    db: db.name,
    influxUrl: INFLUX_URL,
    env: { EXPEED_ROLLUP_SETTLE: '1ms', EXPEED_TIMEZONE: timezone },
  });
  const app = createApp(loadConfig(env), { logger: silentLogger(), scrubber: scrubber() });
  const worker: Worker = app.startRollupWorker();
  app.rollup.startDispatcher({ everyMs: 100 });
  return {
    app,
    db,
    /** until no hour and no day of any device is dirty (a day is touched before its hour is cleared) */
    rolledUp: () =>
      until(
        'hours and days rolled up',
        async () => (await app.rollup.dirty.backlog()).hours === 0 && (await app.rollup.days.backlog()).hours === 0,
        { timeoutMs: 120_000 },
      ),
    async close() {
      await worker.close();
      await app.close();
      await db.drop();
      await deleteRedisPrefix(prefix);
    },
  };
}

function rows(
  deviceId: string,
  from: number,
  to: number,
  step: number,
  value: (k: number) => Record<string, unknown>,
): SinkPoint[] {
  const out: SinkPoint[] = [];
  for (let t = from, k = 0; t < to; t += step, k++)
    out.push({ measurement: 'device_data', deviceId, time: t, fields: value(k) });
  return out;
}

const quarter = (k: number) => ({
  temperature: 20 + (k % 13) / 4,
  mode: k % 50 < 25 ? 'eco' : 'boost',
  door: k % 3 === 0,
});

describe('daily rollups (Asia/Shanghai)', () => {
  const FROM = Date.UTC(2026, 4, 10) - 8 * HOUR; // 2026-05-10 00:00 in Asia/Shanghai
  let r: Awaited<ReturnType<typeof rollupApp>>;
  const check = async (days: number) => {
    const c = await dayDiffs(r.db.name, INFLUX_URL, FROM, FROM + 3 * DAY, 'Asia/Shanghai');
    expect(c.diffs).toEqual([]);
    expect(c.hours).toBe(days);
    expect(c.values).toBeGreaterThan(days * 5);
  };
  const day = async (deviceId: string, start: number) =>
    (
      await influxRows(
        r.db.name,
        `SELECT * FROM "device_data_1d" WHERE "device_id" = '${deviceId}' AND time >= ${start}ms AND time < ${start + DAY}ms`,
      )
    )[0];

  beforeAll(async () => {
    r = await rollupApp('rday', 'Asia/Shanghai');
  });

  afterAll(async () => {
    await r?.close();
  });

  test('backfilled rows: every day equals the raw day, mean included, when the cadence changes within it', async () => {
    // cad-1: every 10 s for the first 6 hours (cold), then every 10 min (warm); d-2: every 30 s, three days
    const cold = rows('cad-1', FROM, FROM + 6 * HOUR, 10_000, (k) => ({ temperature: 5 + (k % 4) / 4 }));
    const warm = rows('cad-1', FROM + 6 * HOUR, FROM + 3 * DAY, 600_000, (k) => ({
      temperature: 30 + (k % 8) / 4,
      mode: 'eco',
    }));
    await r.app.writer.write([...cold, ...warm], { source: 'pull' });
    await r.app.writer.write(rows('d-2', FROM, FROM + 3 * DAY, 30_000, quarter), { source: 'pull' });
    await r.rolledUp();
    await check(6);

    const [raw] = await influxRows(
      r.db.name,
      `SELECT mean("temperature"), count("temperature"), sum("temperature"), min("temperature"), max("temperature") FROM "device_data" WHERE "device_id" = 'cad-1' AND time >= ${FROM}ms AND time < ${FROM + DAY}ms`,
    );
    const d = await day('cad-1', FROM);
    expect(d.time).toBe(FROM); // the platform-local midnight
    expect([d.temperature_mean, d.temperature_count, d.temperature_sum, d.temperature_min, d.temperature_max]).toEqual([
      raw.mean,
      raw.count,
      raw.sum,
      raw.min,
      raw.max,
    ]);
    expect(d.temperature_count).toBe(6 * 360 + 18 * 6);
    expect(d.mode_count).toBe(18 * 6);
    // a mean of the hourly means is off by degrees: the day's mean is not one
    const [ofMeans] = await influxRows(
      r.db.name,
      `SELECT mean("temperature_mean") FROM "device_data_1h" WHERE "device_id" = 'cad-1' AND time >= ${FROM}ms AND time < ${FROM + DAY}ms`,
    );
    expect(Math.abs((ofMeans.mean as number) - (raw.mean as number))).toBeGreaterThan(1);
  });

  test('rows written as pushes reach their day (through the webhook: rollup-daily-push.test.ts)', async () => {
    await r.app.writer.write(rows('p-1', FROM + DAY + 5 * HOUR, FROM + DAY + 7 * HOUR, 60_000, quarter), {
      source: 'push',
    });
    await r.rolledUp();
    await check(7);
    expect((await day('p-1', FROM + DAY)).temperature_count).toBe(120);
  });

  test('late rows, written after the day was rolled up, reach it', async () => {
    const before = await day('cad-1', FROM);
    await r.app.writer.write(
      rows('cad-1', FROM + 3 * HOUR + 5_000, FROM + 3 * HOUR + 75_000, 10_000, () => ({ temperature: 100 })),
      { source: 'pull' },
    );
    await r.rolledUp();
    const after = await day('cad-1', FROM);
    expect(after.temperature_count).toBe((before.temperature_count as number) + 7);
    expect(after.temperature_max).toBe(100);
    expect(after.temperature_sum).toBe((before.temperature_sum as number) + 700);
    await check(7);
  });

  test('a row repaired by a dead-letter retry reaches its day', async () => {
    const before = await day('d-2', FROM + 2 * DAY);
    const point: SinkPoint = {
      measurement: 'device_data',
      deviceId: 'd-2',
      time: FROM + 2 * DAY + 9 * HOUR + 15_000,
      fields: { temperature: -40 },
    };
    const id = await r.app.deadLetters.add({
      kind: 'point',
      source: 'pull',
      reason: 'InfluxDB was unavailable',
      deviceId: 'd-2',
      raw: point,
    });
    expect(await r.app.deadLetters.retry([id], retryHandlers(r.app))).toEqual([{ id, ok: true }]);
    await r.rolledUp();
    const after = await day('d-2', FROM + 2 * DAY);
    expect(after.temperature_count).toBe((before.temperature_count as number) + 1);
    expect(after.temperature_min).toBe(-40);
    await check(7);
  });

  test('a day whose raw rows were deleted by hand loses its daily rollup with `rollup`', async () => {
    await influxRows(r.db.name, `DELETE FROM "device_data" WHERE "device_id" = 'p-1'`);
    const hours = Array.from({ length: 24 }, (_, i) => FROM + DAY + i * HOUR);
    await r.app.rollup.dirty.mark(new Map([['p-1', hours]]), { manual: true });
    await r.rolledUp();
    expect(await day('p-1', FROM + DAY)).toBeUndefined();
    await check(6);
  });
});

describe.each([
  // 2026-03-29 has 23 hours in Berlin, 2026-10-25 has 25
  {
    zone: 'Europe/Berlin',
    from: Date.UTC(2026, 2, 27, 23),
    days: 4,
    starts: [
      Date.UTC(2026, 2, 27, 23),
      Date.UTC(2026, 2, 28, 23),
      Date.UTC(2026, 2, 29, 22),
      Date.UTC(2026, 2, 30, 22),
    ],
    hours: [24, 23, 24, 24],
  },
  {
    zone: 'Europe/Berlin',
    from: Date.UTC(2026, 9, 23, 22),
    days: 3,
    starts: [Date.UTC(2026, 9, 23, 22), Date.UTC(2026, 9, 24, 22), Date.UTC(2026, 9, 25, 23)],
    hours: [24, 25, 24],
  },
  // midnight at 18:30 UTC: an hour straddles it, the days are computed from the raw rows
  {
    zone: 'Asia/Kolkata',
    from: Date.UTC(2026, 4, 9, 18, 30),
    days: 2,
    starts: [Date.UTC(2026, 4, 9, 18, 30), Date.UTC(2026, 4, 10, 18, 30)],
    hours: [24, 24],
  },
])('daily rollups in $zone from $from', ({ zone, from, days, starts, hours }) => {
  let r: Awaited<ReturnType<typeof rollupApp>>;

  beforeAll(async () => {
    r = await rollupApp('rdayz', zone);
  });

  afterAll(async () => {
    await r?.close();
  });

  test('each day starts at the local midnight, holds its 23, 24 or 25 hours, and equals the raw day', async () => {
    const to = starts.at(-1)! + hours.at(-1)! * HOUR;
    await r.app.writer.write(rows('z-1', from, to, 600_000, quarter), { source: 'pull' });
    await r.rolledUp();
    const got = await influxRows(
      r.db.name,
      `SELECT "temperature_count", "temperature_mean" FROM "device_data_1d" WHERE "device_id" = 'z-1'`,
    );
    expect(got.map((g) => g.time)).toEqual(starts);
    expect(got.map((g) => g.temperature_count)).toEqual(hours.map((h) => h * 6));
    const c = await dayDiffs(r.db.name, INFLUX_URL, from, to, zone);
    expect(c.diffs).toEqual([]);
    expect(c.hours).toBe(days);

    // a late row 5 min after the second midnight: in Kolkata its UTC hour began the day before
    await r.app.writer.write(
      [{ measurement: 'device_data', deviceId: 'z-1', time: starts[1] + 300_000, fields: { temperature: 99 } }],
      { source: 'pull' },
    );
    await r.rolledUp();
    const [second] = await influxRows(
      r.db.name,
      `SELECT "temperature_count", "temperature_max" FROM "device_data_1d" WHERE "device_id" = 'z-1' AND time = ${starts[1]}ms`,
    );
    expect([second.temperature_count, second.temperature_max]).toEqual([hours[1] * 6 + 1, 99]);
    expect((await dayDiffs(r.db.name, INFLUX_URL, from, to, zone)).diffs).toEqual([]);
  });
});
