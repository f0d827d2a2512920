/**
 * `<name>_sum / <name>_count` over hourly rollups is the raw mean of any range, also for a device
 * whose cadence changes within the day, where a mean of hourly means is not. The rollups are the
 * real RollupComputer's, the reference is InfluxDB's own mean() over the raw rows.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createInfluxQuery } from '../../src/influx/query.js';
import { InfluxPointWriter } from '../../src/influx/point-writer.js';
import { RollupComputer } from '../../src/rollup/rollup-computer.js';
import { createTestDatabase, influxRows } from '../helpers/services.js';

const HOUR = 3_600_000;
const DAY = Date.UTC(2026, 4, 10) - 8 * HOUR; // 2026-05-10 00:00 in Asia/Shanghai

describe('exact means from hourly rollups', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;

  beforeAll(async () => {
    db = await createTestDatabase('rmean');
    const lines: string[] = [];
    // every 10 s for the first 6 hours (cold, 5 °C), then every 10 min (warm, 30 °C + a ramp)
    for (let t = DAY; t < DAY + 6 * HOUR; t += 10_000)
      lines.push(`device_data,device_id=cad-1 temperature=${5 + ((t - DAY) % 7) / 10} ${t}`);
    for (let t = DAY + 6 * HOUR, k = 0; t < DAY + 24 * HOUR; t += 600_000, k++)
      lines.push(`device_data,device_id=cad-1 temperature=${30 + k / 100},mode="eco" ${t}`);
    const res = await fetch(`${db.url}/write?db=${db.name}&precision=ms`, { method: 'POST', body: lines.join('\n') });
    expect(res.status, await res.text()).toBe(204);
    const influx = { url: db.url, api: 'v1' as const, bucket: db.name };
    const writer = new InfluxPointWriter({ ...influx, deadLetters: { add: async () => 'x' } });
    const r = await new RollupComputer({ query: createInfluxQuery(influx), writer, canDelete: async () => true }).range(
      'cad-1',
      DAY,
      DAY + 24 * HOUR,
    );
    await writer.close();
    expect(r.points).toBe(24);
  });

  afterAll(async () => {
    await db?.drop();
  });

  test('a day, and a part of it, from sum/count equal the raw mean; the mean of means does not', async () => {
    for (const [from, to] of [
      [DAY, DAY + 24 * HOUR],
      [DAY + 3 * HOUR, DAY + 9 * HOUR],
    ]) {
      const range = `time >= ${from}ms AND time < ${to}ms`;
      const [raw] = await influxRows(
        db.name,
        `SELECT mean("temperature"), sum("temperature"), count("temperature") FROM "device_data" WHERE ${range}`,
      );
      const [rolled] = await influxRows(
        db.name,
        `SELECT sum("temperature_sum") / sum("temperature_count") AS "exact", mean("temperature_mean") AS "of_means", sum("temperature_sum") AS "sum", sum("temperature_count") AS "count" FROM "device_data_1h" WHERE ${range}`,
      );
      expect(rolled.count).toBe(raw.count);
      expect(rolled.sum as number).toBeCloseTo(raw.sum as number, 6);
      expect(rolled.exact as number).toBeCloseTo(raw.mean as number, 9);
      // the cadence change makes the unweighted mean of hourly means wrong by degrees
      expect(Math.abs((rolled.of_means as number) - (raw.mean as number))).toBeGreaterThan(1);
    }
  });

  test('every hour holds _sum next to _mean and _count (sum = mean × count)', async () => {
    const rows = await influxRows(
      db.name,
      `SELECT "temperature_sum", "temperature_mean", "temperature_count", "mode_count" FROM "device_data_1h" WHERE "device_id" = 'cad-1'`,
    );
    expect(rows.length).toBe(24);
    for (const r of rows)
      expect(r.temperature_sum as number).toBeCloseTo(
        (r.temperature_mean as number) * (r.temperature_count as number),
        6,
      );
    expect(rows.slice(0, 6).map((r) => r.temperature_count)).toEqual(Array(6).fill(360));
    expect(rows.slice(6).map((r) => r.temperature_count)).toEqual(Array(18).fill(6));
    expect(rows.slice(6).map((r) => r.mode_count)).toEqual(Array(18).fill(6));
  });
});
