/**
 * The devices dashboard's mean over rollups is sum / count, the exact mean of the raw rows: a
 * device whose cadence changes within a day (every 30 min in the morning, every minute in the
 * afternoon) gets the same daily, multi-day and 2-hourly means from the rollup tiers as from its
 * raw rows, where a mean of hourly means would be far off. The rollup points are written directly
 * from the raw rows (test/fixtures/rollup-points.ts), so this proves the panel's queries; in each layout
 * of the rollup tiers (test/helpers/grafana.ts RP_LAYOUTS), the hidden RP variables resolved as Grafana does.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createTestDatabase, influxQuery } from '../helpers/services.js';
import {
  gateOpen,
  influxInterpolator,
  rpOptions,
  RP_LAYOUTS,
  tierOf,
  type InfluxSelection,
} from '../helpers/grafana.js';
import { ensureDatabase, rollupRps } from '../../src/influx/database.js';
import { rollupLines, writeLines, type RawRow } from '../fixtures/rollup-points.js';

const dashboard = JSON.parse(readFileSync(new URL('../../grafana/dashboards/expeed.json', import.meta.url), 'utf8'));
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const TZ_OFFSET = 8 * HOUR; // Asia/Shanghai, the dashboard's $timezone
const localDay = (t: number) => Math.floor((t + TZ_OFFSET) / DAY) * DAY - TZ_OFFSET;
const DAY0 = localDay(Date.now()) - 5 * DAY;
const DEVICE = 'cadence-01';

// two local days: mornings every 30 min at 10 + small steps, afternoons every minute at 30 + steps
const rows: RawRow[] = [];
for (let d = 0; d < 2; d++) {
  for (let t = DAY0 + d * DAY; t < DAY0 + d * DAY + 12 * HOUR; t += 30 * 60_000)
    rows.push({ device: DEVICE, t, f: { level: 10 + ((t / 60_000) % 3) } });
  for (let t = DAY0 + d * DAY + 12 * HOUR; t < DAY0 + (d + 1) * DAY; t += 60_000)
    rows.push({ device: DEVICE, t, f: { level: 30 + ((t / 60_000) % 7) } });
}
const meanOf = (rs: RawRow[]) => rs.reduce((a, r) => a + (r.f.level as number), 0) / rs.length;

let db: Awaited<ReturnType<typeof createTestDatabase>>;
const chosenRp: Record<string, string> = {};
const interpolate = influxInterpolator(dashboard, (name) =>
  name === 'device' ? [DEVICE] : chosenRp[name] !== undefined ? [chosenRp[name]] : ['level'],
);
const meanPanel = dashboard.panels.find((p: { title: string }) => p.title.startsWith('Mean of'));

/** The mean panel's answer for `level` at this interval: the target whose gate is open, and its rows. */
async function panelMeans(intervalMs: number): Promise<{ tier: string; rows: Array<[number, number]> }> {
  const sel: InfluxSelection = {
    name: `${intervalMs} ms`,
    values: { device: [DEVICE], numeric: ['level'] },
    join: 'bare',
    intervalMs,
    timeFilter: `time >= ${DAY0}ms and time < ${DAY0 + 2 * DAY}ms`,
  };
  const open = meanPanel.targets.filter((t: { query: string }) => gateOpen(t.query, intervalMs));
  expect(open.length).toBe(1);
  const series = await influxQuery(
    db.name,
    interpolate(open[0].query, sel, DAY0, DAY0 + 2 * DAY, { numeric: 'level' }),
    db.url,
  );
  expect(series.length).toBe(1);
  const col = series[0].columns.indexOf('mean');
  return { tier: tierOf(open[0].query), rows: series[0].values.map((v) => [v[0] as number, v[col] as number]) };
}

describe.each(RP_LAYOUTS)(
  'exact means for a device whose cadence changes within the day, rollups in $name',
  (layout) => {
    const rps = rollupRps(layout);
    beforeAll(async () => {
      db = await createTestDatabase('exactmean');
      if (rps.hourly)
        await ensureDatabase({
          url: db.url,
          api: 'v1',
          bucket: db.name,
          rawRetentionMs: layout.rawRetentionMs,
          hourlyRetentionMs: layout.hourlyRetentionMs,
        });
      await writeLines(
        db.url,
        db.name,
        rows.map((r) => `device_data,device_id=${DEVICE} level=${r.f.level} ${r.t}`),
      );
      await writeLines(
        db.url,
        db.name,
        rollupLines('device_data_1h', rows, (t) => Math.floor(t / HOUR) * HOUR),
        rps.hourly,
      );
      await writeLines(db.url, db.name, rollupLines('device_data_1d', rows, localDay), rps.daily);
      for (const name of ['rollup_rp', 'hourly_rp'])
        chosenRp[name] = (await rpOptions(dashboard, name, (q) => influxQuery(db.name, q, db.url)))[0];
      expect([chosenRp.rollup_rp, chosenRp.hourly_rp]).toEqual([rps.daily ?? 'autogen', rps.hourly ?? 'autogen']);
    });
    afterAll(async () => {
      await db?.drop();
    });

    test('a day from the daily rollups is the raw mean of the platform-local day, not a mean of hourly means', async () => {
      const got = await panelMeans(DAY);
      expect(got.tier).toBe('daily');
      expect(got.rows.map(([t]) => t)).toEqual([DAY0, DAY0 + DAY]);
      for (const [t, mean] of got.rows) {
        const day = rows.filter((r) => r.t >= t && r.t < t + DAY);
        expect(day.length).toBe(24 + 720);
        expect(mean).toBeCloseTo(meanOf(day), 9);
        // what InfluxDB says over the raw rows of that day
        const [raw] = await influxQuery(
          db.name,
          `SELECT mean("level") FROM "device_data" WHERE time >= ${t}ms AND time < ${t + DAY}ms`,
          db.url,
        );
        expect(mean).toBeCloseTo(raw.values[0][1] as number, 9);
        // the mean of the 24 hourly means would differ by about 9: the test can tell them apart
        const hours = Array.from({ length: 24 }, (_, h) =>
          meanOf(day.filter((r) => r.t >= t + h * HOUR && r.t < t + (h + 1) * HOUR)),
        );
        expect(Math.abs(hours.reduce((a, b) => a + b, 0) / 24 - mean)).toBeGreaterThan(5);
      }
    });

    test('two days in one interval, and 2-hour intervals from the hourly rollups, are the raw means too', async () => {
      const two = await panelMeans(2 * DAY);
      expect(two.tier).toBe('daily');
      expect(two.rows.length).toBeGreaterThan(0);
      for (const [t, mean] of two.rows)
        expect(mean).toBeCloseTo(meanOf(rows.filter((r) => r.t >= Math.max(t, DAY0) && r.t < t + 2 * DAY)), 9);
      const hourly = await panelMeans(2 * HOUR);
      expect(hourly.tier).toBe('hourly');
      expect(hourly.rows.length).toBe(24);
      for (const [t, mean] of hourly.rows)
        expect(mean).toBeCloseTo(meanOf(rows.filter((r) => r.t >= t && r.t < t + 2 * HOUR)), 9);
    });
  },
);
