/**
 * Proves the InfluxDB panels of the fleet dashboard (grafana/dashboards/expeed-fleet.json) against a
 * real InfluxDB in the three layouts of the rollup tiers (default RP; `rollups_forever` with
 * EXPEED_RAW_RETENTION; hourly ones in `rollups_hourly`, daily ones in `rollups_forever` with
 * EXPEED_HOURLY_RETENTION):
 * twelve devices over two platform-local days, device k missing k hours; raw rows, and the hourly and
 * daily rollups written directly from them (test/fixtures/rollup-points.ts). Every target is
 * interpolated as Grafana does and run at intervals that pick each source; the numbers are checked.
 * The Prometheus panels are run by service-dashboard.test.ts against a real `expeed-sync run`.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createTestDatabase, influxQuery } from '../helpers/services.js';
import {
  dashboardCheck,
  gateOpen,
  influxInterpolator,
  panelTargets,
  rpOptions,
  RP_LAYOUTS,
  tierOf,
  type InfluxSelection,
} from '../helpers/grafana.js';
import { rollupLines, writeLines, type RawRow } from '../fixtures/rollup-points.js';
import { ensureDatabase, rollupRps } from '../../src/influx/database.js';

const dashboard = JSON.parse(
  readFileSync(new URL('../../grafana/dashboards/expeed-fleet.json', import.meta.url), 'utf8'),
);
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const TZ_OFFSET = 8 * HOUR; // Asia/Shanghai, the dashboard's $timezone
const localDay = (t: number) => Math.floor((t + TZ_OFFSET) / DAY) * DAY - TZ_OFFSET;
const FROM = localDay(Date.now()) - 3 * DAY;
const TO = FROM + 2 * DAY;
const DEVICES = Array.from({ length: 12 }, (_, k) => `fleet-${String(k).padStart(2, '0')}`);

// device k: a value every 10 min, except in hours 3 .. 3 + k - 1 (k missing hours); device 0 also a text datapoint
const rows: RawRow[] = [];
DEVICES.forEach((device, k) => {
  for (let t = FROM; t < TO; t += 10 * 60_000) {
    const hour = Math.floor((t - FROM) / HOUR);
    if (hour >= 3 && hour < 3 + k) continue;
    rows.push({
      device,
      t,
      f: { power: 100 * k + ((t / 60_000) % 13), ...(k === 0 ? { mode: hour % 2 ? 'eco' : 'auto' } : {}) },
    });
  }
});

const check = dashboardCheck('expeed-fleet.json');
const influxPanels = dashboard.panels.filter(
  (p: { datasource?: { type: string } }) => p.datasource?.type === 'influxdb',
);
const TARGETS = panelTargets(influxPanels, 'expeed-influxdb', check).map(({ panel, target, where }) => ({
  title: panel.title as string,
  refId: target.refId as string,
  query: target.query as string,
  where,
}));
let rollupRp = 'autogen';
let hourlyRp = 'autogen';
const interpolate = influxInterpolator(dashboard, (name) =>
  name === 'device' ? DEVICES : name === 'rollup_rp' ? [rollupRp] : name === 'hourly_rp' ? [hourlyRp] : ['power'],
);
let db: Awaited<ReturnType<typeof createTestDatabase>>;

const selection = (intervalMs: number, device: string[] | 'all' = 'all'): InfluxSelection => ({
  name: `${intervalMs} ms`,
  values: { device, datapoint: ['power'] },
  join: 'bare',
  intervalMs,
  timeFilter: `time >= ${FROM}ms and time < ${TO}ms`,
});
const run = async (query: string, sel: InfluxSelection) =>
  influxQuery(db.name, interpolate(query, sel, FROM, TO, { datapoint: 'power' }), db.url);
/** the one target of a panel whose gate is open at the selection's interval, and its answer */
async function answer(title: string, sel: InfluxSelection) {
  const open = TARGETS.filter((t) => t.title.startsWith(title) && gateOpen(t.query, sel.intervalMs));
  expect(open.length).toBe(1);
  return { tier: tierOf(open[0].query), series: await run(open[0].query, sel) };
}
const inBucket = (t: number, start: number, ms: number) => t >= start && t < start + ms;

describe.each(RP_LAYOUTS)('fleet dashboard, rollups in $name', (layout) => {
  const rps = rollupRps(layout);
  beforeAll(async () => {
    db = await createTestDatabase('fleetdash');
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
      rows.map(
        (r) => `device_data,device_id=${r.device} power=${r.f.power}${r.f.mode ? `,mode="${r.f.mode}"` : ''} ${r.t}`,
      ),
    );
    await writeLines(
      db.url,
      db.name,
      rollupLines('device_data_1h', rows, (t) => Math.floor(t / HOUR) * HOUR),
      rps.hourly,
    );
    await writeLines(db.url, db.name, rollupLines('device_data_1d', rows, localDay), rps.daily);
    const run = (q: string) => influxQuery(db.name, q, db.url);
    rollupRp = (await rpOptions(dashboard, 'rollup_rp', run))[0];
    hourlyRp = (await rpOptions(dashboard, 'hourly_rp', run))[0];
  });
  afterAll(async () => {
    await db?.drop();
  });

  test('the dashboard is well-formed and provisioned beside the others; $datapoint lists the numeric datapoints', async () => {
    expect(dashboard).toMatchObject({ uid: 'expeed-fleet', title: 'Expeed fleet' });
    expect(TARGETS.length).toBe(7);
    expect(dashboard.templating.list.map((v: { name: string }) => v.name)).toEqual([
      'device',
      'rollup_rp',
      'hourly_rp',
      'datapoint',
      'timezone',
    ]);
    // the hidden variables find each tier where this layout put it
    expect([rollupRp, hourlyRp]).toEqual([rps.daily ?? 'autogen', rps.hourly ?? 'autogen']);
    const v = dashboard.templating.list[3];
    const keys = (await influxQuery(db.name, interpolate(v.query, selection(HOUR), FROM, TO), db.url))[0].values.map(
      (r) => String(r[0]),
    );
    const pattern = new RegExp(v.regex.slice(1, v.regex.lastIndexOf('/')));
    expect(keys.flatMap((k) => pattern.exec(k)?.[1] ?? [])).toEqual(['power']);
  });

  test.each([10 * 60_000, HOUR, 2 * HOUR, DAY, 2 * DAY])(
    'at %i ms exactly the target for that source answers',
    async (ms) => {
      for (const t of TARGETS) {
        const series = await run(t.query, selection(ms));
        if (gateOpen(t.query, ms)) expect(series.length, `${t.where} answered nothing`).toBeGreaterThan(0);
        else expect(series, `${t.where} answered at ${ms} ms`).toEqual([]);
      }
    },
  );

  test.each([
    { ms: 10 * 60_000, tier: 'raw' },
    { ms: HOUR, tier: 'hourly' },
    { ms: DAY, tier: 'daily' },
  ])('devices reporting per interval from $tier', async ({ ms, tier }) => {
    const got = await answer('Devices reporting', selection(ms));
    expect(got.tier).toBe(tier);
    const values = got.series[0].values as Array<[number, number]>;
    expect(values.length).toBe(Math.floor((TO - 1 + TZ_OFFSET) / ms) - Math.floor((FROM + TZ_OFFSET) / ms) + 1);
    for (const [t, n] of values)
      expect(n, `bucket ${t}`).toBe(new Set(rows.filter((r) => inBucket(r.t, t, ms)).map((r) => r.device)).size);
    if (ms === HOUR) expect(values.map(([, n]) => n).slice(0, 6)).toEqual([12, 12, 12, 1, 2, 3]);
  });

  test.each([
    { ms: 10 * 60_000, tier: 'raw' },
    { ms: 2 * HOUR, tier: 'hourly' },
    { ms: DAY, tier: 'daily' },
  ])('fleet mean / min / max from $tier equal the raw rows', async ({ ms, tier }) => {
    for (const device of ['all', [DEVICES[5]]] as const) {
      const got = await answer('Fleet mean', selection(ms, device === 'all' ? 'all' : [...device]));
      expect(got.tier).toBe(tier);
      const s = got.series[0];
      const col = (name: string) => s.columns.indexOf(name);
      expect(s.values.length).toBeGreaterThan(0);
      for (const v of s.values) {
        const vs = rows
          .filter((r) => inBucket(r.t, v[0] as number, ms) && (device === 'all' || r.device === device[0]))
          .map((r) => r.f.power as number);
        expect(v[col('mean')]).toBeCloseTo(vs.reduce((a, b) => a + b, 0) / vs.length, 9);
        expect([v[col('min')], v[col('max')]]).toEqual([Math.min(...vs), Math.max(...vs)]);
      }
    }
  });

  test('top 10 devices by missing hours, whatever the interval; one device selected: that one', async () => {
    for (const ms of [10 * 60_000, DAY]) {
      const [s] = await run(TARGETS.find((t) => t.title.startsWith('Top 10'))!.query, selection(ms));
      const byDevice = s.values
        .map((v) => [v[s.columns.indexOf('device_id')], v[s.columns.indexOf('missing')]])
        .sort((a, b) => (b[1] as number) - (a[1] as number));
      expect(byDevice).toEqual(
        DEVICES.slice(2)
          .reverse()
          .map((d, i) => [d, 11 - i]),
      );
    }
    const [one] = await run(TARGETS.find((t) => t.title.startsWith('Top 10'))!.query, selection(HOUR, [DEVICES[7]]));
    expect(one.values.map((v) => [v[one.columns.indexOf('device_id')], v[one.columns.indexOf('missing')]])).toEqual([
      [DEVICES[7], 7],
    ]);
  });
});
