/**
 * `npm run bench:rollup`: one year of 10 s rows for BENCH_DEVICES devices (default 3; two numeric
 * datapoints and one text datapoint per row), written as raw line protocol to a private database
 * as fast as InfluxDB takes it; then the rollup computation over the whole year (RollupComputer,
 * the code the rollup worker runs: InfluxQL GROUP BY time(1h) per 31 days, points written through
 * the InfluxPointWriter), with its wall time and the CPU of InfluxDB and of this process per raw
 * row; then the yearly daily view (mean/min/max per day and device) from raw rows and from the
 * rollups, each the median of BENCH_QUERY_RUNS (3) runs, and a check that the daily min/max of
 * both agree. The database is dropped at the end (BENCH_KEEP=1 keeps it). BENCH_DAYS shortens the
 * year (a check of the script, not a figure).
 */
import { randomBytes } from 'node:crypto';
import { InfluxPointWriter } from '../src/influx/point-writer.js';
import { createInfluxQuery } from '../src/influx/query.js';
import { RollupComputer } from '../src/rollup/rollup-computer.js';
import { cpuSeconds, influxql, pidOf } from './lib.js';

const URL_ = (process.env.INFLUX_URL ?? 'http://127.0.0.1:8086').replace(/\/+$/, '');
const DEVICES = Number(process.env.BENCH_DEVICES ?? 3);
const RUNS = Number(process.env.BENCH_QUERY_RUNS ?? 3);
const STEP = 10_000;
const FROM = Date.UTC(2025, 0, 1);
// BENCH_DAYS shortens the year for a quick check of the script itself
const TO = process.env.BENCH_DAYS ? FROM + Number(process.env.BENCH_DAYS) * 86_400_000 : Date.UTC(2026, 0, 1);
const LINES_PER_POST = 10_000;
const db = `bench_rollup_${randomBytes(4).toString('hex')}`;
const device = (i: number) => `dev-${String(i).padStart(3, '0')}`;

async function post(body: string): Promise<void> {
  const res = await fetch(`${URL_}/write?db=${db}&precision=ms`, { method: 'POST', body });
  if (res.status !== 204) throw new Error(`write failed: HTTP ${res.status} ${await res.text()}`);
}

/** Writes the year with two POSTs in flight (one being built while the other is parsed). */
async function load(): Promise<number> {
  let rows = 0;
  const inFlight: Promise<void>[] = [];
  for (let d = 0; d < DEVICES; d++) {
    const tag = `device_data,device_id=${device(d)} `;
    let lines: string[] = [];
    for (let t = FROM, k = 0; t < TO; t += STEP, k++) {
      const temp =
        Math.round((20 + 5 * Math.sin((2 * Math.PI * t) / 86_400_000 + d) + ((k * 7919) % 100) / 100) * 100) / 100;
      lines.push(
        `${tag}temperature=${temp},humidity=${50 + ((k * 31 + d) % 21)},mode="${k % 360 < 180 ? 'eco' : 'boost'}" ${t}`,
      );
      if (lines.length === LINES_PER_POST) {
        if (inFlight.length >= 2) await inFlight.shift();
        inFlight.push(post(lines.join('\n')));
        rows += lines.length;
        lines = [];
      }
    }
    if (lines.length) {
      inFlight.push(post(lines.join('\n')));
      rows += lines.length;
    }
  }
  await Promise.all(inFlight);
  return rows;
}

async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; seconds: number }> {
  const start = process.hrtime.bigint();
  const value = await fn();
  return { value, seconds: Number(process.hrtime.bigint() - start) / 1e9 };
}

async function medianQuery(q: string): Promise<{ seconds: number; series: Awaited<ReturnType<typeof influxql>> }> {
  const runs: Array<{ seconds: number; series: Awaited<ReturnType<typeof influxql>> }> = [];
  for (let i = 0; i < RUNS; i++) {
    const r = await timed(() => influxql(URL_, db, q));
    runs.push({ seconds: r.seconds, series: r.value });
  }
  runs.sort((a, b) => a.seconds - b.seconds);
  return runs[Math.floor(runs.length / 2)];
}

async function main(): Promise<void> {
  const influxd = pidOf('influxd');
  await influxql(URL_, db, `CREATE DATABASE "${db}"`);
  try {
    const loaded = await timed(load);
    const rows = loaded.value;
    console.log(
      `loaded ${rows.toLocaleString('en')} rows (${DEVICES} device(s) x ${Math.round((TO - FROM) / 86_400_000)} days of 10 s rows) in ${loaded.seconds.toFixed(1)} s: ${Math.round(rows / loaded.seconds).toLocaleString('en')} rows/s`,
    );

    const influx = { url: URL_, api: 'v1' as const, bucket: db };
    const writer = new InfluxPointWriter({ ...influx, deadLetters: { add: async () => 'none' } });
    const computer = new RollupComputer({
      query: createInfluxQuery({ ...influx, timeoutMs: 600_000 }),
      writer,
      canDelete: async () => true,
    });
    const cpu0 = { influx: cpuSeconds(influxd), self: process.cpuUsage() };
    let points = 0;
    const rolled = await timed(async () => {
      for (let d = 0; d < DEVICES; d++) points += (await computer.range(device(d), FROM, TO)).points;
    });
    const influxCpu = influxd === undefined ? undefined : cpuSeconds(influxd)! - cpu0.influx!;
    const selfCpu = process.cpuUsage(cpu0.self);
    const ourCpu = (selfCpu.user + selfCpu.system) / 1e6;
    await writer.close();
    const us = (s: number) => ((s / rows) * 1e6).toFixed(2);
    console.log(
      `rollup: ${points.toLocaleString('en')} hourly points from ${rows.toLocaleString('en')} raw rows in ${rolled.seconds.toFixed(1)} s wall ` +
        `(${us(rolled.seconds)} us/row); CPU influxd ${influxCpu?.toFixed(1) ?? '?'} s (${influxCpu === undefined ? '?' : us(influxCpu)} us/row), expeed-sync ${ourCpu.toFixed(2)} s (${us(ourCpu)} us/row)`,
    );

    const range = `time >= ${FROM}ms AND time < ${TO}ms GROUP BY time(1d), "device_id"`;
    const raw = await medianQuery(
      `SELECT mean("temperature"), min("temperature"), max("temperature") FROM "device_data" WHERE ${range}`,
    );
    const fromRollups = await medianQuery(
      `SELECT mean("temperature_mean"), min("temperature_min"), max("temperature_max") FROM "device_data_1h" WHERE ${range}`,
    );
    console.log(
      `yearly daily view (mean/min/max per day, ${DEVICES} device(s)), median of ${RUNS}: raw ${raw.seconds.toFixed(3)} s, rollups ${fromRollups.seconds.toFixed(3)} s (${(raw.seconds / fromRollups.seconds).toFixed(0)}x)`,
    );

    // min and max of a day are exact from rollups; the mean of equal-count hours too (up to rounding)
    let days = 0;
    let worstMean = 0;
    for (const [i, s] of raw.series.entries()) {
      const r = fromRollups.series[i];
      for (const [k, row] of s.values.entries()) {
        const other = r.values[k];
        if (row[0] !== other[0] || row[2] !== other[2] || row[3] !== other[3])
          throw new Error(
            `day ${row[0]} of ${s.tags?.device_id}: raw ${JSON.stringify(row)} != rollups ${JSON.stringify(other)}`,
          );
        worstMean = Math.max(worstMean, Math.abs((row[1] as number) - (other[1] as number)));
        days++;
      }
    }
    console.log(
      `checked ${days} device-days: daily min and max identical, largest daily-mean difference ${worstMean.toExponential(1)}`,
    );
  } finally {
    if (process.env.BENCH_KEEP !== '1') await influxql(URL_, db, `DROP DATABASE "${db}"`);
  }
}

await main();
