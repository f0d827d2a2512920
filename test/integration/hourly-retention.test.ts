/**
 * EXPEED_HOURLY_RETENTION on InfluxDB 1.x: the hourly rollups go to `rollups_hourly`, a retention
 * policy of that duration, the daily ones to `rollups_forever`, raw rows stay in the default RP.
 * An hour older than the retention is not written (InfluxDB would drop it), and its day is
 * computed from the raw rows instead: every day still equals the raw day.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createApp, type App } from '../../src/app/app.js';
import { ensureDatabase, HOURLY_RP, ROLLUP_RP } from '../../src/influx/database.js';
import { loadConfig } from '../../src/base/load-config.js';
import type { SinkPoint } from '../../src/influx/api.js';
import { platformDay } from '../../src/platform/timestamp.js';
import {
  createTestDatabase,
  deleteRedisPrefix,
  INFLUX_URL,
  influxRows,
  testPrefix,
  until,
} from '../helpers/services.js';
import { scrubber, silentLogger, testEnv } from '../fixtures/pull-env.js';
import { dayDiffs, rollupDiffs } from '../fixtures/rollup-check.js';

const HOUR = 3_600_000;
const MIN = 60_000;
const DAY = 24 * HOUR;
const NOW = Math.floor(Date.now() / HOUR) * HOUR;
const FROM = NOW - 30 * HOUR;
const TO = NOW - HOUR;
/** a whole platform-local day ten days ago: older than the hourly retention (3d) */
const OLD = platformDay(NOW - 10 * DAY, 'Asia/Shanghai');

describe('EXPEED_HOURLY_RETENTION (InfluxDB 1.x)', () => {
  let stack: App;
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  const prefix = testPrefix('hret');
  const count = async (from: string) =>
    (await influxRows(db.name, `SELECT count("temperature_count") FROM ${from}`))[0]?.count ?? 0;

  beforeAll(async () => {
    db = await createTestDatabase('hret');
    const config = loadConfig(
      testEnv({
        simUrl: 'http://127.0.0.1:9',
        prefix,
        db: db.name,
        influxUrl: INFLUX_URL,
        env: { EXPEED_HOURLY_RETENTION: '3d', EXPEED_ROLLUP_SETTLE: '1ms', EXPEED_TIMEZONE: 'Asia/Shanghai' },
      }),
    );
    expect(config.influx.hourlyRetentionMs).toBe(3 * DAY);
    stack = createApp(config, { logger: silentLogger(), scrubber: scrubber() });
    const points: SinkPoint[] = [];
    const add = (from: number, to: number) => {
      for (let t = from, k = 0; t < to; t += MIN, k++)
        points.push({
          measurement: 'device_data',
          deviceId: 'hr-a',
          time: t,
          fields: { temperature: 20 + (k % 9) / 4, mode: k % 2 ? 'eco' : 'auto' },
        });
    };
    add(OLD.start, OLD.end);
    add(FROM, TO);
    await stack.writer.write(points, { source: 'pull' });
    stack.startRollupWorker();
    stack.rollup.startDispatcher({ everyMs: 100 });
    await until(
      'hours and days rolled up',
      async () => (await stack.rollup.dirty.backlog()).hours === 0 && (await stack.rollup.days.backlog()).hours === 0,
      { timeoutMs: 120_000 },
    );
  });

  afterAll(async () => {
    await stack?.close();
    await db?.drop();
    await deleteRedisPrefix(prefix);
  });

  test('rollups_hourly has the retention, rollups_forever none, the default RP (raw rows) is untouched; a new value is followed', async () => {
    const rps = async () =>
      (await influxRows(db.name, `SHOW RETENTION POLICIES ON "${db.name}"`)).map((r) => [
        r.name,
        r.duration,
        r.shardGroupDuration,
        r.default,
      ]);
    expect(await rps()).toEqual([
      ['autogen', '0s', '168h0m0s', true],
      [ROLLUP_RP, '0s', '168h0m0s', false],
      [HOURLY_RP, '72h0m0s', '24h0m0s', false],
    ]);
    const target = { url: INFLUX_URL, api: 'v1' as const, bucket: db.name };
    await ensureDatabase({ ...target, hourlyRetentionMs: 400 * DAY });
    await ensureDatabase({ ...target, hourlyRetentionMs: 400 * DAY });
    expect((await rps())[2]).toEqual([HOURLY_RP, '9600h0m0s', '168h0m0s', false]);
    await ensureDatabase({ ...target, hourlyRetentionMs: 3 * DAY });
    expect((await rps())[2]).toEqual([HOURLY_RP, '72h0m0s', '24h0m0s', false]);
  });

  test('hourly rollups are written into rollups_hourly only, exact; none for hours older than the retention', async () => {
    const hourly = `"${HOURLY_RP}"."device_data_1h"`;
    const check = await rollupDiffs(db.name, INFLUX_URL, FROM, TO, hourly);
    expect(check.diffs).toEqual([]);
    expect(check.hours).toBe(29);
    expect(await count(hourly)).toBe(29);
    expect(await count(`"${ROLLUP_RP}"."device_data_1h"`)).toBe(0);
    expect(await count('"autogen"."device_data_1h"')).toBe(0);
  });

  test('daily rollups are written into rollups_forever, the old day computed from the raw rows; every day equals the raw day', async () => {
    const daily = `"${ROLLUP_RP}"."device_data_1d"`;
    const days = await dayDiffs(db.name, INFLUX_URL, OLD.start, TO, 'Asia/Shanghai', daily);
    expect(days.diffs).toEqual([]);
    const recentDays = new Set([FROM, TO - 1].map((t) => platformDay(t, 'Asia/Shanghai').start)).size;
    expect(days.hours).toBe(1 + recentDays);
    const [old] = await influxRows(
      db.name,
      `SELECT "temperature_count", "mode_count" FROM ${daily} WHERE time = ${OLD.start}ms`,
    );
    expect([old.temperature_count, old.mode_count]).toEqual([1440, 1440]);
    expect(await count(`"${HOURLY_RP}"."device_data_1d"`)).toBe(0);
    expect(await count('"autogen"."device_data_1d"')).toBe(0);
  });
});
