/**
 * Proves the provisioned Grafana dashboard against a real InfluxDB: every panel target, every
 * annotation and every template variable query is interpolated the way Grafana's InfluxQL data
 * source does it and run on a database loaded with fixture points. A query that InfluxDB refuses,
 * that comes back empty, or that still holds a macro after interpolation fails the test.
 */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createTestDatabase, influxQuery, INFLUX_URL } from '../helpers/services.js';
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
import { RollupComputer } from '../../src/rollup/rollup-computer.js';
import { createInfluxQuery } from '../../src/influx/query.js';
import type { PointWriter } from '../../src/influx/api.js';
import { InfluxPointWriter } from '../../src/influx/point-writer.js';
import { ensureDatabase, HOURLY_RP, ROLLUP_RP, rollupRps } from '../../src/influx/database.js';
import { rollupLines, writeLines } from '../fixtures/rollup-points.js';

const ROOT = new URL('../../', import.meta.url);
const dashboard = JSON.parse(readFileSync(new URL('grafana/dashboards/expeed.json', ROOT), 'utf8'));
const provisioned = parse(readFileSync(new URL('grafana/provisioning/datasources/influxdb.yml', ROOT), 'utf8'));
const DS_UID: string = provisioned.datasources[0].uid;

// ---- fixture: six hours of points, hour-aligned so per-hour expectations are exact ----------
const HOUR = 3_600_000;
const MIN = 60_000;
const NOW = Date.now();
const BASE = Math.floor(NOW / HOUR) * HOUR - 6 * HOUR;
type Value = number | boolean | string;
interface Point {
  m: string;
  device: string;
  t: number;
  f: Record<string, Value>;
}
const points: Point[] = [];
for (let k = 0; k < 36; k++) {
  const t = BASE + k * 10 * MIN;
  const pump: Record<string, Value> = { temperature: 20 + (k % 6) };
  if (k % 2 === 0) pump.humidity = 40 + k;
  if (k % 3 === 0) pump.switch = k >= 18;
  if (k % 12 === 0) pump.mode = k < 24 ? 'auto' : 'eco';
  points.push({ m: 'device_data', device: 'pump-01', t, f: pump });
  points.push({ m: 'device_data', device: 'meter_02', t, f: { temperature: 10 + k / 10, energy: k * 1.5 } });
}
const status = (device: string, t: number, online: boolean, raw: number, source: string): Point => ({
  m: 'device_status',
  device,
  t,
  f: { online, raw_status: raw, source },
});
points.push(status('pump-01', BASE, true, 1, 'poll'), status('pump-01', BASE + 2 * HOUR, false, 1, 'push'));
points.push(status('pump-01', BASE + 4 * HOUR, true, 0, 'push'), status('meter_02', BASE + HOUR, true, 1, 'poll'));
for (let k = 0; k < 12; k++) points.push(status('gw-03', BASE + k * 30 * MIN, true, 1, 'poll'));
const setting = (device: string, t: number, id: string, state: string, settings: object): Point => ({
  m: 'device_setting',
  device,
  t,
  f: { message_id: id, state, settings: JSON.stringify(settings) },
});
points.push(
  setting('pump-01', BASE + HOUR, 'm-1', 'sent', { temp: 25 }),
  setting('pump-01', BASE + HOUR + 5000, 'm-1', 'applied', { temp: 25 }),
);
points.push(
  setting('pump-01', BASE + 3 * HOUR, 'm-2', 'sent', { switch: 1 }),
  setting('pump-01', BASE + 3 * HOUR + 9000, 'm-2', 'failed', { switch: 1 }),
);
points.push(setting('meter_02', BASE + 5 * HOUR, 'm-3', 'timeout', { mode: 'eco' }));

const DEVICES = ['gw-03', 'meter_02', 'pump-01'];
const FIELDS = ['energy', 'humidity', 'mode', 'switch', 'temperature'];
const NUMERIC = ['energy', 'humidity', 'temperature'];

function lineProtocol(p: Point): string {
  const fields = Object.entries(p.f).map(
    ([k, v]) =>
      `${k}=${typeof v === 'string' ? `"${v.replace(/["\\]/g, '\\$&')}"` : typeof v === 'boolean' ? v : Number.isInteger(v) && k === 'raw_status' ? `${v}i` : v}`,
  );
  return `${p.m},device_id=${p.device} ${fields.join(',')} ${p.t}`;
}

// ---- Grafana's interpolation (test/helpers/grafana.ts) ---------------------------------------
type Selection = InfluxSelection;
const interpolate = influxInterpolator(dashboard, (name) =>
  name === 'device'
    ? DEVICES
    : name === 'rollup_rp'
      ? [rollupRp]
      : name === 'hourly_rp'
        ? [hourlyRp]
        : name === 'numeric'
          ? NUMERIC
          : FIELDS,
);
/** The platform's zone (the dashboard's constant $timezone): Asia/Shanghai, UTC+8 all year. */
const TZ_OFFSET = 8 * HOUR;
const DAY = 24 * HOUR;
const localDay = (t: number) => Math.floor((t + TZ_OFFSET) / DAY) * DAY - TZ_OFFSET;

// ---- the dashboard's queries ----------------------------------------------------------------
/** `repeat`: the panel repeats for every chosen value of that variable (Grafana's panel repeat) */
interface Query {
  where: string;
  query: string;
  format: string;
  repeat?: string;
}
function dashboardQueries(): Query[] {
  const out: Query[] = [];
  const check = dashboardCheck('dashboard');
  for (const { panel, target: t, where } of panelTargets(dashboard.panels, DS_UID, check)) {
    // a builder-mode query would be rendered by Grafana's editor and escape this test
    check(t.rawQuery === true, `${where} is not a raw InfluxQL query`);
    check(typeof t.query === 'string' && t.query.trim() !== '', `${where} has no query text`);
    out.push({ where, query: t.query, format: t.resultFormat, repeat: panel.repeat });
  }
  for (const a of dashboard.annotations.list) {
    if (a.builtIn) continue;
    check(a.datasource?.uid === DS_UID, `annotation "${a.name}" does not use data source ${DS_UID}`);
    out.push({ where: `annotation "${a.name}"`, query: a.query, format: 'table' });
  }
  return out;
}

type Series = Awaited<ReturnType<typeof influxQuery>>;
let db: Awaited<ReturnType<typeof createTestDatabase>>;
/** what Grafana picks for $rollup_rp (daily rollups) and $hourly_rp (hourly ones) in the current database */
let rollupRp: string;
let hourlyRp: string;
const run = (q: string): Promise<Series> => influxQuery(db.name, q, INFLUX_URL);
/** The values of a variable a selection shows (every value for All). */
const chosenIn = (sel: Selection, name: string, every: string[]) =>
  Array.isArray(sel.values[name]) ? (sel.values[name] as string[]) : every;
/**
 * A query's answer as Grafana gets it: a repeated panel runs once per chosen value of its
 * variable, that value scoped (`scoped` names it on each series).
 */
async function runQuery(
  q: Query,
  sel: Selection,
  from: number,
  to: number,
): Promise<Array<Series[number] & { scoped?: string }>> {
  if (!q.repeat) return run(interpolate(q.query, sel, from, to));
  const out = [];
  for (const value of chosenIn(sel, q.repeat, NUMERIC))
    for (const s of await run(interpolate(q.query, sel, from, to, { [q.repeat]: value })))
      out.push({ ...s, scoped: value });
  return out;
}
/** Every query of a panel (raw and rollup targets) or annotation. */
const byTitle = (title: string): Query[] => {
  const found = dashboardQueries().filter(
    (q) => q.where.startsWith(`panel "${title}`) || q.where.startsWith(`annotation "${title}`),
  );
  if (!found.length) throw new Error(`dashboard has no panel "${title}"`);
  return found;
};
/** A rollup column as the raw one it stands for: `mean_x_mean` -> `mean_x`, `sum_x_count` -> `count_x`. */
const asRaw = (column: string) =>
  column.replace(/^(mean|last)_(.*)_(mean|last)$/, '$1_$2').replace(/^sum_(.*)_count$/, 'count_$1');

describe.each(RP_LAYOUTS)('rollups in $name', (layout) => {
  /** where the service writes each tier in this layout (undefined: the default RP) */
  const rps = rollupRps(layout);
  beforeAll(async () => {
    db = await createTestDatabase('dashboard');
    const res = await fetch(`${db.url}/write?db=${encodeURIComponent(db.name)}&precision=ms`, {
      method: 'POST',
      body: points.map(lineProtocol).join('\n'),
    });
    expect(res.status, await res.text()).toBe(204);
    // the hourly rollups, computed by the real rollup code from the raw fixture
    const influx = { url: db.url, api: 'v1' as const, bucket: db.name };
    // with a retention the database gets its RPs where the writer ensures it, and each tier goes to its RP
    if (rps.hourly)
      await ensureDatabase({
        ...influx,
        rawRetentionMs: layout.rawRetentionMs,
        hourlyRetentionMs: layout.hourlyRetentionMs,
      });
    const writer: PointWriter = new InfluxPointWriter({
      ...influx,
      deadLetters: { add: async () => 'x' },
      ...(rps.hourly ? { rp: rps.hourly } : {}),
    });
    const computed = await new RollupComputer({
      query: createInfluxQuery(influx),
      writer,
      canDelete: async () => true,
    }).range(undefined, BASE, BASE + 6 * HOUR);
    await writer.close();
    expect(computed.points).toBe(2 * 6);
    // the daily rollups, written directly from the raw fixture (per day in the platform's zone)
    const raw = points.filter((p) => p.m === 'device_data').map((p) => ({ device: p.device, t: p.t, f: p.f }));
    const daily = rollupLines('device_data_1d', raw, localDay);
    expect(daily.length).toBe(2 * new Set(raw.map((r) => localDay(r.t))).size);
    await writeLines(db.url, db.name, daily, rps.daily);
    rollupRp = (await rpOptions(dashboard, 'rollup_rp', run))[0];
    hourlyRp = (await rpOptions(dashboard, 'hourly_rp', run))[0];
  });
  afterAll(async () => {
    await db?.drop();
  });

  const FROM = NOW - 24 * HOUR;
  const absolute = `time >= ${FROM}ms and time <= ${NOW}ms`;
  const SELECTIONS: Selection[] = [
    {
      name: 'All (allValue .*), 1h',
      values: { device: 'all', field: 'all', numeric: 'all', state: 'all' },
      join: 'bare',
      timeFilter: absolute,
      intervalMs: HOUR,
    },
    {
      name: 'All expanded to every value, (a|b) join',
      values: { device: 'all-expanded', field: 'all-expanded', numeric: 'all-expanded', state: 'all-expanded' },
      join: 'paren',
      timeFilter: absolute,
      intervalMs: HOUR,
    },
    {
      name: 'one device, one datapoint, relative range, 1m',
      values: { device: ['pump-01'], field: ['temperature'], numeric: ['temperature'], state: ['switch'] },
      join: 'bare',
      timeFilter: 'time >= now() - 24h and time <= now()',
      intervalMs: MIN,
    },
    {
      name: 'two of each, a|b join (Grafana 10+)',
      values: {
        device: ['pump-01', 'meter_02'],
        field: ['temperature', 'energy'],
        numeric: ['temperature', 'energy'],
        state: ['switch', 'mode'],
      },
      join: 'bare',
      timeFilter: absolute,
      intervalMs: 10 * MIN,
    },
    {
      name: 'two of each, (a|b) join (older Grafana)',
      values: { device: ['pump-01', 'meter_02'], field: ['humidity', 'energy'], numeric: ['energy'], state: ['mode'] },
      join: 'paren',
      timeFilter: absolute,
      intervalMs: HOUR,
    },
    {
      name: 'All, 1d (daily rollups)',
      values: { device: 'all', field: 'all', numeric: 'all', state: 'all' },
      join: 'bare',
      timeFilter: absolute,
      intervalMs: DAY,
    },
    {
      name: 'one device, two datapoints, 2h',
      values: {
        device: ['pump-01'],
        field: ['humidity', 'temperature'],
        numeric: ['humidity', 'temperature'],
        state: ['switch'],
      },
      join: 'paren',
      timeFilter: absolute,
      intervalMs: 2 * HOUR,
    },
  ];

  describe('provisioning', () => {
    test('the data source is InfluxQL with a fixed uid that every panel uses', () => {
      const ds = provisioned.datasources[0];
      expect(ds).toMatchObject({
        uid: 'expeed-influxdb',
        type: 'influxdb',
        access: 'proxy',
        jsonData: { version: 'InfluxQL', httpMode: 'POST', httpHeaderName1: 'Authorization' },
      });
      expect(ds.secureJsonData.httpHeaderValue1).toBe('Token ${EXPEED_GRAFANA_INFLUX_TOKEN}');
      expect(dashboardQueries().length).toBe(15);
    });
    test('the dashboard is well-formed for provisioning', () => {
      expect(dashboard).toMatchObject({ uid: 'expeed-devices', title: 'Expeed devices' });
      const all = (panels: Array<Record<string, any>>): Array<Record<string, any>> =>
        panels.flatMap((p) => [p, ...all(p.panels ?? [])]);
      const ids = all(dashboard.panels).map((p) => p.id);
      expect(new Set(ids).size).toBe(ids.length);
      expect(dashboard.templating.list.map((v: { name: string }) => v.name)).toEqual([
        'device',
        'field',
        'state',
        'rollup_rp',
        'hourly_rp',
        'numeric',
        'timezone',
      ]);
      for (const v of dashboard.templating.list) if (v.type !== 'constant') expect(v.datasource.uid).toBe(DS_UID);
      expect(dashboard.templating.list.at(-1)).toMatchObject({ type: 'constant', query: 'Asia/Shanghai', hide: 2 });
    });
    test('an unknown macro fails the check instead of reaching InfluxDB', () => {
      expect(() => interpolate('SELECT 1 FROM x WHERE $timeFilter AND $__range', SELECTIONS[0], FROM, NOW)).toThrow(
        /unsubstituted Grafana macro or variable "\$__range"/,
      );
      expect(() => interpolate('SELECT [[nope]]', SELECTIONS[0], FROM, NOW)).toThrow(/"\[\[nope\]\]"/);
    });
  });

  describe('template variables', () => {
    const variables = (dashboard.templating.list as Array<{ name: string; query: string; regex?: string }>).map(
      (v) => ({ name: v.name, query: v.query, regex: v.regex }),
    );
    test('$rollup_rp resolves to the retention policy of the daily rollups, $hourly_rp to that of the hourly ones', async () => {
      const forever = layout.rawRetentionMs !== undefined || layout.hourlyRetentionMs !== undefined;
      expect(await rpOptions(dashboard, 'rollup_rp', run)).toEqual(forever ? [ROLLUP_RP, 'autogen'] : ['autogen']);
      expect(await rpOptions(dashboard, 'hourly_rp', run)).toEqual([
        ...(layout.hourlyRetentionMs ? [HOURLY_RP] : []),
        ...(forever ? [ROLLUP_RP] : []),
        'autogen',
      ]);
      expect([rollupRp, hourlyRp]).toEqual([rps.daily ?? 'autogen', rps.hourly ?? 'autogen']);
      expect([rollupRp, hourlyRp]).toEqual(
        layout.hourlyRetentionMs
          ? [ROLLUP_RP, HOURLY_RP]
          : layout.rawRetentionMs
            ? [ROLLUP_RP, ROLLUP_RP]
            : ['autogen', 'autogen'],
      );
      // each tier is in the RP its variable names and in no other one of the database
      const existing = await rpOptions(dashboard, 'hourly_rp', run);
      for (const [measurement, rp] of [
        ['device_data_1h', hourlyRp],
        ['device_data_1d', rollupRp],
      ]) {
        const [where] = await run(`SELECT count(*) FROM "${rp}"."${measurement}"`);
        expect(where?.values.length, `${measurement} in ${rp}`).toBe(1);
        for (const other of existing.filter((x) => x !== rp))
          expect(await run(`SELECT count(*) FROM "${other}"."${measurement}"`), `${measurement} in ${other}`).toEqual(
            [],
          );
        // a database whose default RP has another name: Grafana's "None" (value '') reads the default RP
        if (rp === 'autogen') expect(await run(`SELECT count(*) FROM ""."${measurement}"`)).toEqual([where]);
      }
    });
    test.each(variables.filter((v) => !['rollup_rp', 'hourly_rp', 'timezone'].includes(v.name)))(
      '$name lists what is in InfluxDB',
      async ({ name, query, regex }) => {
        const series = await run(interpolate(query, SELECTIONS[0], FROM, NOW));
        // Grafana shows the value column of SHOW TAG VALUES and the first column of SHOW FIELD KEYS,
        // filtered by the variable's regex (its capture group when it has one)
        const values = series.flatMap((s) => s.values.map((v) => String(/show field keys/i.test(query) ? v[0] : v[1])));
        const pattern = regex ? new RegExp(regex.slice(1, regex.lastIndexOf('/'))) : undefined;
        const shown = pattern
          ? values.flatMap((v) => {
              const m = pattern.exec(v);
              return m ? [m[1] ?? m[0]] : [];
            })
          : values;
        expect([...new Set(shown)].sort()).toEqual(name === 'device' ? DEVICES : name === 'numeric' ? NUMERIC : FIELDS);
      },
    );
  });

  describe.each(SELECTIONS)('every query runs and honours the selection: $name', (sel) => {
    const chosen = (name: string, every: string[]) => chosenIn(sel, name, every);
    test.each(dashboardQueries())('$where', async (q) => {
      const series = await runQuery(q, sel, FROM, NOW);
      // a target for another resolution (raw below 1 h, hourly below 1 d, daily from 1 d) answers nothing, by design
      if (!gateOpen(q.query, sel.intervalMs)) {
        expect(series, `${q.where} answered for an interval it is not meant for`).toEqual([]);
        return;
      }
      expect(series.length, `${q.where} returned nothing`).toBeGreaterThan(0);
      const devices = chosen('device', DEVICES);
      for (const s of series) {
        expect(s.values.length).toBeGreaterThan(0);
        expect(s.values.some((row) => row.slice(1).some((v) => v !== null))).toBe(true);
        const ids =
          s.tags?.device_id !== undefined
            ? [s.tags.device_id]
            : s.values.map((r) => String(r[s.columns.indexOf('device_id')]));
        for (const id of ids) expect(devices).toContain(id);
        // a repeated panel answers for its own datapoint only, and only numeric ones have a mean
        if (s.scoped !== undefined) expect(chosen('numeric', NUMERIC)).toContain(s.scoped);
        // aggregate columns are named <function>_<datapoint>: only chosen datapoints may appear
        const aggregated = s.columns
          .map(asRaw)
          .filter((c) => /^(mean|last|count)_/.test(c))
          .map((c) => c.replace(/^[a-z]+_/, ''));
        const variable = /last\(/.test(q.query) ? 'state' : 'field';
        for (const f of aggregated) expect(chosen(variable, FIELDS)).toContain(f);
      }
    });
  });

  describe('values match the fixture (All selected, 1h interval)', () => {
    const sel = SELECTIONS[0];
    const rows = async (title: string, at: Selection = sel) => {
      const series = (await Promise.all(byTitle(title).map((q) => runQuery(q, at, FROM, NOW)))).flat();
      return series.flatMap((s) =>
        s.values.map(
          (v) =>
            ({
              ...(s.tags ?? {}),
              scoped: s.scoped,
              ...Object.fromEntries(s.columns.map((c, i) => [asRaw(c), v[i]])),
            }) as Record<string, any>,
        ),
      );
    };
    const bucketed = (
      m: string,
      device: string,
      field: string,
      bucketOf: (t: number) => number = (t) => Math.floor(t / HOUR) * HOUR,
    ) => {
      const buckets = new Map<number, Value[]>();
      for (const p of points)
        if (p.m === m && p.device === device && p.f[field] !== undefined) {
          const b = bucketOf(p.t);
          buckets.set(b, [...(buckets.get(b) ?? []), p.f[field]]);
        }
      return buckets;
    };
    const hourly = (m: string, device: string, field: string) => bucketed(m, device, field);

    /** mean, min and max per bucket from the panel equal those of the raw fixture rows */
    const expectMeans = async (at: Selection, bucketOf: (t: number) => number) => {
      const got = await rows('Mean of', at);
      expect([...new Set(got.map((r) => r.scoped))].sort()).toEqual(NUMERIC);
      for (const [device, fields] of [
        ['pump-01', ['temperature', 'humidity']],
        ['meter_02', ['temperature', 'energy']],
      ] as const) {
        for (const field of fields) {
          const expected = [...bucketed('device_data', device, field, bucketOf)].map(([t, vs]) => {
            const nums = vs as number[];
            return [t, nums.reduce((a, b) => a + b, 0) / nums.length, Math.min(...nums), Math.max(...nums)];
          });
          const actual = got
            .filter((r) => r.device_id === device && r.scoped === field)
            .map((r) => [r.time, r.mean, r.min, r.max]);
          expect(actual.length).toBe(expected.length);
          actual.forEach(([t, mean, min, max], i) => {
            expect(t).toBe(expected[i][0]);
            expect(mean).toBeCloseTo(expected[i][1], 9);
            expect([min, max]).toEqual([expected[i][2], expected[i][3]]);
          });
        }
      }
    };
    test('numeric datapoints: mean, min and max per hour and device, one panel per datapoint; text and booleans have none', async () => {
      await expectMeans(sel, (t) => Math.floor(t / HOUR) * HOUR);
    });
    test('at a 1 d interval the daily rollups give each platform-local day its exact mean, min and max', async () => {
      await expectMeans({ ...sel, intervalMs: DAY }, localDay);
    });

    test('the states timeline carries the last boolean and text value of each hour', async () => {
      const got = (await rows('Datapoints: states')).filter((r) => r.device_id === 'pump-01');
      const last = (field: string) => [...hourly('device_data', 'pump-01', field)].map(([t, vs]) => [t, vs.at(-1)]);
      expect(got.filter((r) => r.last_switch !== null).map((r) => [r.time, r.last_switch])).toEqual(last('switch'));
      expect(got.filter((r) => r.last_mode !== null).map((r) => [r.time, r.last_mode])).toEqual([
        [BASE, 'auto'],
        [BASE + 2 * HOUR, 'auto'],
        [BASE + 4 * HOUR, 'eco'],
      ]);
    });

    test('online/offline is a boolean per device and interval', async () => {
      const got = await rows('Online / offline');
      expect(got.filter((r) => r.device_id === 'pump-01').map((r) => [r.time, r.online])).toEqual([
        [BASE, true],
        [BASE + 2 * HOUR, false],
        [BASE + 4 * HOUR, true],
      ]);
      expect(got.filter((r) => r.device_id === 'gw-03').map((r) => r.online)).toEqual([
        true,
        true,
        true,
        true,
        true,
        true,
      ]);
    });

    test('last status per device keeps the raw code and the source', async () => {
      const got = await rows('Last status per device');
      expect(got.map((r) => [r.device_id, r.time, r.online, r.raw_status, r.source]).sort()).toEqual([
        ['gw-03', BASE + 11 * 30 * MIN, true, 1, 'poll'],
        ['meter_02', BASE + HOUR, true, 1, 'poll'],
        ['pump-01', BASE + 4 * HOUR, true, 0, 'push'],
      ]);
    });

    test('setting results list every state, newest first per device', async () => {
      const got = await rows('Setting results');
      expect(
        got.filter((r) => r.device_id === 'pump-01').map((r) => [r.message_id, r.state, JSON.parse(r.settings)]),
      ).toEqual([
        ['m-2', 'failed', { switch: 1 }],
        ['m-2', 'sent', { switch: 1 }],
        ['m-1', 'applied', { temp: 25 }],
        ['m-1', 'sent', { temp: 25 }],
      ]);
      expect(got.filter((r) => r.device_id === 'meter_02').map((r) => [r.time, r.message_id, r.state])).toEqual([
        [BASE + 5 * HOUR, 'm-3', 'timeout'],
      ]);
      const notes = await rows('Settings');
      expect(notes.map((r) => [r.device_id, r.message_id, r.state]).sort()).toEqual([
        ['meter_02', 'm-3', 'timeout'],
        ['pump-01', 'm-1', 'applied'],
        ['pump-01', 'm-1', 'sent'],
        ['pump-01', 'm-2', 'failed'],
        ['pump-01', 'm-2', 'sent'],
      ]);
    });

    test('last data per device is the newest row with its time', async () => {
      const got = await rows('Last data per device');
      const last = BASE + 35 * 10 * MIN;
      expect(got.map((r) => [r.device_id, r.time, r.temperature, r.energy ?? null]).sort()).toEqual([
        ['meter_02', last, 13.5, 52.5],
        ['pump-01', last, 25, null],
      ]);
    });

    test('values and status reports per interval (1 h here) add up to what was written', async () => {
      const values = await rows('Values per interval');
      for (const device of ['pump-01', 'meter_02']) {
        const written = points
          .filter((p) => p.m === 'device_data' && p.device === device)
          .reduce((n, p) => n + Object.keys(p.f).length, 0);
        const counted = values
          .filter((r) => r.device_id === device)
          .reduce((n, r) => n + FIELDS.reduce((m, f) => m + (r[`count_${f}`] ?? 0), 0), 0);
        expect(counted).toBe(written);
      }
      const reports = await rows('Status reports per interval');
      const perDevice = (d: string) => reports.filter((r) => r.device_id === d).reduce((n, r) => n + r.reports, 0);
      expect([perDevice('pump-01'), perDevice('meter_02'), perDevice('gw-03')]).toEqual([3, 1, 12]);
      expect(reports.filter((r) => r.device_id === 'gw-03' && r.time >= BASE).map((r) => r.reports)).toEqual([
        2, 2, 2, 2, 2, 2, 0,
      ]); // the current hour: nothing yet, a visible zero
    });
  });

  describe('counts are grouped by $__interval, never by a fixed hour', () => {
    test.each([
      { ms: 10 * MIN, source: 'raw' },
      { ms: 2 * HOUR, source: 'hourly' },
      { ms: DAY, source: 'daily' },
    ])('$ms ms from $source', async ({ ms }) => {
      const sel: Selection = { ...SELECTIONS[0], intervalMs: ms };
      const series = (
        await Promise.all(byTitle('Values per interval').map((q) => run(interpolate(q.query, sel, FROM, NOW))))
      ).flat();
      const perDevice = new Map<string, number[]>();
      let counted = 0;
      for (const s of series) {
        const times = s.values.map((v) => v[0] as number);
        perDevice.set(s.tags!.device_id, times);
        for (let i = 1; i < times.length; i++) expect(times[i] - times[i - 1]).toBe(ms);
        counted += s.values.reduce((n, v) => n + v.slice(1).reduce((m: number, x) => m + ((x as number) ?? 0), 0), 0);
      }
      // every bucket of the 24 h range (fill(0)), its partial ends included: 145 of 10 min, 13 of 2 h, or 2 local days
      const bucket = (t: number) => Math.floor((t + TZ_OFFSET) / ms);
      for (const times of perDevice.values()) expect(times.length).toBe(bucket(NOW) - bucket(FROM) + 1);
      if (ms === DAY) for (const times of perDevice.values()) expect(times.every((t) => t === localDay(t))).toBe(true);
      const written = points.filter((p) => p.m === 'device_data').reduce((n, p) => n + Object.keys(p.f).length, 0);
      expect(counted).toBe(written);
    });
  });

  describe('the source follows the interval: raw below one hour, hourly rollups below one day, daily ones from a day', () => {
    const panels = ['Mean of', 'Datapoints: states', 'Values per interval'];
    test.each(SELECTIONS.map((sel) => ({ name: sel.name, sel })))('$name', async ({ sel }) => {
      for (const title of panels) {
        const answered = [];
        for (const q of byTitle(title)) if ((await runQuery(q, sel, FROM, NOW)).length) answered.push(tierOf(q.query));
        expect(answered, title).toEqual([sel.intervalMs >= DAY ? 'daily' : sel.intervalMs >= HOUR ? 'hourly' : 'raw']);
      }
    });
  });
});
