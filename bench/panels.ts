/**
 * `npm run bench:rollup`, second part: every InfluxDB panel query of the devices and fleet
 * dashboards at fleet size. Into a private database it writes BENCH_FLEET (1,000) devices x 5 years
 * of daily rollups, x 1 year of hourly rollups, and BENCH_RAW_DEVICES (10) x BENCH_RAW_DAYS (365)
 * of raw 10 s rows (two numeric datapoints and a text one, like the first part), timing each load.
 * Then, for ranges of 1 d, 30 d, 1 y and 5 y ending with the data, with all devices and with one,
 * it runs the target each panel sends at Grafana's interval for that range (range / the panel's max
 * data points, else 1,000, rounded as Grafana does: 1 min, 30 min, 6 h, 1 d on a wide panel) and prints its time (median of BENCH_QUERY_RUNS, default 1)
 * and answer size against the target (< 1 s, < 2 MB), and for rollup targets with one device the
 * ratio to the panel's raw target over the same range. A query is given up after
 * BENCH_QUERY_TIMEOUT_S (60) and printed as over it. The database is dropped at the end.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { gateOpen, influxInterpolator, tierOf, type InfluxSelection } from '../test/helpers/grafana.js';
import { influxql } from './lib.js';

const URL_ = (process.env.INFLUX_URL ?? 'http://127.0.0.1:8086').replace(/\/+$/, '');
const FLEET = Number(process.env.BENCH_FLEET ?? 1000);
const RAW_DEVICES = Number(process.env.BENCH_RAW_DEVICES ?? 10);
const RAW_DAYS = Number(process.env.BENCH_RAW_DAYS ?? 365);
const RUNS = Number(process.env.BENCH_QUERY_RUNS ?? 1);
const QUERY_TIMEOUT_MS = Number(process.env.BENCH_QUERY_TIMEOUT_S ?? 60) * 1000;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const TZ_OFFSET = 8 * HOUR; // Asia/Shanghai, the dashboards' $timezone
const END = Date.UTC(2026, 0, 1) - TZ_OFFSET; // local midnight
const db = `bench_panels_${randomBytes(4).toString('hex')}`;
const device = (i: number) => `dev-${String(i).padStart(4, '0')}`;
const LINES_PER_POST = 10_000;

async function post(body: string): Promise<void> {
  const res = await fetch(`${URL_}/write?db=${db}&precision=ms`, { method: 'POST', body });
  if (res.status !== 204) throw new Error(`write failed: HTTP ${res.status} ${await res.text()}`);
}

/** Writes `lines(d, t)` for every device and step, two POSTs in flight; returns points and seconds. */
async function load(
  devices: number,
  from: number,
  step: number,
  line: (d: number, t: number, k: number) => string,
): Promise<{ points: number; seconds: number }> {
  const start = process.hrtime.bigint();
  const inFlight: Promise<void>[] = [];
  let batch: string[] = [];
  let points = 0;
  for (let d = 0; d < devices; d++) {
    for (let t = from, k = 0; t < END; t += step, k++) {
      batch.push(line(d, t, k));
      if (batch.length === LINES_PER_POST) {
        if (inFlight.length >= 2) await inFlight.shift();
        inFlight.push(post(batch.join('\n')));
        points += batch.length;
        batch = [];
      }
    }
  }
  if (batch.length) inFlight.push(post(batch.join('\n')));
  points += batch.length;
  await Promise.all(inFlight);
  return { points, seconds: Number(process.hrtime.bigint() - start) / 1e9 };
}

/** A rollup point of `n` rows whose numbers centre on `base` (numeric fields mean/min/max/sum/count, text last/count). */
function rollupLine(measurement: string, d: number, t: number, n: number, base: number): string {
  const num = (name: string, c: number) =>
    `${name}_mean=${c},${name}_min=${c - 3},${name}_max=${c + 3},${name}_sum=${c * n},${name}_count=${n}i`;
  return `${measurement},device_id=${device(d)} ${num('temperature', base)},${num('humidity', 50 + (d % 21))},mode_last="${t % 2 ? 'eco' : 'boost'}",mode_count=${n}i ${t}`;
}

interface Target {
  dashboard: string;
  title: string;
  refId: string;
  query: string;
  repeat?: string;
  maxDataPoints?: number;
}
function targets(file: string): { list: Target[]; dashboard: any } {
  const dashboard = JSON.parse(readFileSync(new URL(`../grafana/dashboards/${file}`, import.meta.url), 'utf8'));
  const list: Target[] = [];
  const walk = (panels: any[]) => {
    for (const p of panels) {
      if (p.panels) walk(p.panels);
      for (const t of p.targets ?? [])
        if (t.datasource?.type === 'influxdb')
          list.push({
            dashboard: file,
            title: p.title,
            refId: t.refId,
            query: t.query,
            repeat: p.repeat,
            maxDataPoints: p.maxDataPoints,
          });
    }
  };
  walk(dashboard.panels);
  for (const a of dashboard.annotations.list)
    if (a.datasource?.type === 'influxdb')
      list.push({ dashboard: file, title: `annotation ${a.name}`, refId: 'A', query: a.query });
  return { list, dashboard };
}

async function timedQuery(q: string): Promise<{ seconds: number; bytes: number }> {
  const runs: Array<{ seconds: number; bytes: number }> = [];
  for (let i = 0; i < RUNS; i++) {
    const start = process.hrtime.bigint();
    const answer = await fetch(`${URL_}/query?${new URLSearchParams({ db, q, epoch: 'ms' })}`, {
      method: 'POST',
      signal: AbortSignal.timeout(QUERY_TIMEOUT_MS),
    })
      .then(async (res) => ({ res, body: await res.text() }))
      .catch((err: Error) => {
        if (err.name === 'TimeoutError') return undefined;
        throw err;
      });
    if (!answer) return { seconds: Infinity, bytes: NaN }; // printed as "> BENCH_QUERY_TIMEOUT_S"
    const { res, body } = answer;
    if (!res.ok || body.includes('"error"')) throw new Error(`InfluxQL "${q}" failed: ${body.slice(0, 300)}`);
    runs.push({ seconds: Number(process.hrtime.bigint() - start) / 1e9, bytes: Buffer.byteLength(body) });
  }
  runs.sort((a, b) => a.seconds - b.seconds);
  return runs[Math.floor(runs.length / 2)];
}

const RANGES = [
  { name: '1 d', ms: DAY },
  { name: '30 d', ms: 30 * DAY },
  { name: '1 y', ms: 365 * DAY },
  { name: '5 y', ms: 5 * 365 * DAY },
];
/** A panel's points per line: its max data points, else its width in pixels (about 1,000 on a wide panel). */
const DEFAULT_MAX_DATA_POINTS = 1000;
/** Grafana's rounding of range / max data points to `$__interval` (rangeutil.roundInterval), from 1 min up. */
const ROUNDED: Array<[below: number, interval: number]> = [
  [90_000, 60_000],
  [210_000, 120_000],
  [450_000, 300_000],
  [750_000, 600_000],
  [1_050_000, 900_000],
  [1_500_000, 1_200_000],
  [2_700_000, 1_800_000],
  [5_400_000, 3_600_000],
  [9_000_000, 7_200_000],
  [16_200_000, 10_800_000],
  [32_400_000, 21_600_000],
  [86_400_000, 43_200_000],
  [604_800_000, 86_400_000],
  [1_814_400_000, 604_800_000],
  [3_628_800_000, 2_592_000_000],
];
const grafanaIntervalMs = (rangeMs: number, maxDataPoints = DEFAULT_MAX_DATA_POINTS) => {
  const raw = rangeMs / maxDataPoints;
  return ROUNDED.find(([below]) => raw < below)?.[1] ?? 31_536_000_000;
};

async function measure(): Promise<void> {
  const dashboards = [targets('expeed.json'), targets('expeed-fleet.json')];
  console.log(
    '| dashboard | panel | target | range | devices | interval | source | time s | answer KB | raw time s | ratio | target met |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const { list, dashboard } of dashboards) {
    const every = (name: string) =>
      name === 'device'
        ? [device(0)]
        : name === 'rollup_rp' || name === 'hourly_rp'
          ? ['autogen']
          : name === 'numeric' || name === 'datapoint'
            ? ['temperature']
            : ['temperature', 'humidity', 'mode'];
    const interpolate = influxInterpolator(dashboard, every);
    for (const r of RANGES) {
      for (const devices of ['all', 'one'] as const) {
        const from = END - r.ms;
        const scoped = { numeric: 'temperature', datapoint: 'temperature' };
        for (const t of list.filter((x) => gateOpen(x.query, grafanaIntervalMs(r.ms, x.maxDataPoints)))) {
          const intervalMs = grafanaIntervalMs(r.ms, t.maxDataPoints);
          const sel: InfluxSelection = {
            name: r.name,
            values: {
              device: devices === 'all' ? 'all' : [device(0)],
              datapoint: ['temperature'],
              numeric: ['temperature'],
            },
            join: 'bare',
            intervalMs,
            timeFilter: `time >= ${from}ms and time < ${END}ms`,
          };
          const m = await timedQuery(interpolate(t.query, sel, from, END, scoped));
          let raw = '';
          let ratio = '';
          const tier = tierOf(t.query);
          const rawTarget = list.find((x) => x.title === t.title && tierOf(x.query) === 'raw');
          if (tier !== 'raw' && devices === 'one' && rawTarget) {
            const ungated = rawTarget.query.replace(/ AND \$__interval_ms < \d+/, '');
            const rm = await timedQuery(interpolate(ungated, sel, from, END, scoped));
            raw = Number.isFinite(rm.seconds) ? rm.seconds.toFixed(3) : `> ${QUERY_TIMEOUT_MS / 1000}`;
            ratio =
              Number.isFinite(rm.seconds) && Number.isFinite(m.seconds)
                ? `${(rm.seconds / m.seconds).toFixed(1)}x`
                : '';
          }
          const ok = m.seconds < 1 && m.bytes < 2 * 1024 * 1024 ? 'yes' : '**no**';
          const secs = (x: number) => (Number.isFinite(x) ? x.toFixed(3) : `> ${QUERY_TIMEOUT_MS / 1000}`);
          console.log(
            `| ${t.dashboard} | ${t.title} | ${t.refId} | ${r.name} | ${devices} | ${intervalMs / 60_000} min | ${tier} | ${secs(m.seconds)} | ${Number.isNaN(m.bytes) ? '?' : (m.bytes / 1024).toFixed(1)} | ${raw} | ${ratio} | ${ok} |`,
          );
        }
      }
    }
  }
}

async function main(): Promise<void> {
  await influxql(URL_, db, `CREATE DATABASE "${db}"`);
  try {
    const daily = await load(FLEET, END - 5 * 365 * DAY, DAY, (d, t) =>
      rollupLine('device_data_1d', d, t, 8640, 20 + (d % 7)),
    );
    console.log(
      `daily rollups: ${daily.points.toLocaleString('en')} points (${FLEET} devices x 5 y) in ${daily.seconds.toFixed(1)} s`,
    );
    const hourly = await load(FLEET, END - 365 * DAY, HOUR, (d, t) =>
      rollupLine('device_data_1h', d, t, 360, 20 + (d % 7)),
    );
    console.log(
      `hourly rollups: ${hourly.points.toLocaleString('en')} points (${FLEET} devices x 1 y) in ${hourly.seconds.toFixed(1)} s`,
    );
    const raw = await load(
      RAW_DEVICES,
      END - RAW_DAYS * DAY,
      10_000,
      (d, t, k) =>
        `device_data,device_id=${device(d)} temperature=${20 + (d % 7) + ((k * 7919) % 100) / 100},humidity=${50 + ((k * 31 + d) % 21)},mode="${k % 360 < 180 ? 'eco' : 'boost'}" ${t}`,
    );
    console.log(
      `raw rows: ${raw.points.toLocaleString('en')} (${RAW_DEVICES} devices x ${RAW_DAYS} d of 10 s rows) in ${raw.seconds.toFixed(1)} s`,
    );
    console.log(`load average before the queries: ${readFileSync('/proc/loadavg', 'utf8').trim()}`);
    await measure();
  } finally {
    if (process.env.BENCH_KEEP !== '1') await influxql(URL_, db, `DROP DATABASE "${db}"`);
  }
}

await main();
