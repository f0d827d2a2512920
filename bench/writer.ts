/**
 * `npm run bench:writer`: 1M points (100 devices, 5 sparse fields) through the InfluxPointWriter,
 * and in the same run the same points as raw 5000-line POSTs with keep-alive (bodies built before
 * the clock starts: the server's ceiling). Prints both rates, the ratio and peak RSS, and checks
 * that both databases hold the same data. Uses INFLUX_URL (default http://127.0.0.1:8086); each run
 * writes to two fresh databases and drops them afterwards.
 *
 * Options (environment): BENCH_POINTS (default 1000000), BENCH_DEVICES (100), BENCH_CONCURRENCY (the writer's
 * default), BENCH_ROUNDS (4:
 * the two paths run in alternating slices so that neither pays for the other's aftermath).
 */
import { randomBytes } from 'node:crypto';
import { MEASUREMENT, type SinkPoint } from '../src/influx/api.js';
import { InfluxPointWriter } from '../src/influx/point-writer.js';
import { influxql as influxqlAt } from './lib.js';

const URL_ = (process.env.INFLUX_URL ?? 'http://127.0.0.1:8086').replace(/\/+$/, '');
const TOTAL = Number(process.env.BENCH_POINTS ?? 1_000_000);
const DEVICES = Number(process.env.BENCH_DEVICES ?? 100);
const FIELDS = ['temp', 'hum', 'volt', 'power', 'speed'];
const BATCH = 5000;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 4);
const T0 = Date.UTC(2024, 0, 1);

/** The values of the first series an InfluxQL statement returns. */
async function influxql(db: string, q: string): Promise<unknown[][]> {
  return (await influxqlAt(URL_, db, q))[0]?.values ?? [];
}

/** Deterministic sparse rows: each carries 1–5 of the fields, like the platform's history pages. */
function makePoints(): SinkPoint[] {
  let seed = 42;
  const rand = () => (seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648) / 2_147_483_648;
  const points: SinkPoint[] = new Array(TOTAL);
  for (let i = 0; i < TOTAL; i++) {
    const fields: Record<string, unknown> = {};
    const mask = 1 + Math.floor(rand() * 31);
    for (let f = 0; f < FIELDS.length; f++) if (mask & (1 << f)) fields[FIELDS[f]] = Math.round(rand() * 100_000) / 100;
    points[i] = {
      measurement: MEASUREMENT.data,
      deviceId: `device-${String(i % DEVICES).padStart(3, '0')}`,
      time: T0 + Math.floor(i / DEVICES) * 1000,
      fields,
    };
  }
  return points;
}

/** The same points as plain line protocol, 5000 lines a body (no validation, names need no escaping). */
function rawBodies(points: SinkPoint[]): string[] {
  const bodies: string[] = [];
  for (let i = 0; i < points.length; i += BATCH) {
    const lines: string[] = [];
    for (const p of points.slice(i, i + BATCH)) {
      const fields = Object.entries(p.fields)
        .map(([k, v]) => `${k}=${String(v)}`)
        .join(',');
      lines.push(`${p.measurement},device_id=${p.deviceId} ${fields} ${p.time}`);
    }
    bodies.push(lines.join('\n'));
  }
  return bodies;
}

async function rawPosts(db: string, bodies: string[]): Promise<number> {
  const started = performance.now();
  for (const body of bodies) {
    // global fetch (undici) keeps the connection alive between requests
    const res = await fetch(`${URL_}/write?db=${db}&precision=ms`, {
      method: 'POST',
      body,
      headers: { 'content-type': 'text/plain' },
    });
    if (res.status !== 204) throw new Error(`raw write answered ${res.status}: ${await res.text()}`);
    await res.arrayBuffer();
  }
  return performance.now() - started;
}

async function main(): Promise<void> {
  const tag = `${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
  const writerDb = `bench_writer_${tag}`;
  const rawDb = `bench_raw_${tag}`;
  const points = makePoints();
  const bodies = rawBodies(points);
  const fieldValues = points.reduce((n, p) => n + Object.keys(p.fields).length, 0);
  console.log(
    `bench:writer  ${TOTAL.toLocaleString('en')} points, ${DEVICES} devices, ${fieldValues.toLocaleString('en')} field values, InfluxDB ${URL_}`,
  );

  await influxql(rawDb, `CREATE DATABASE "${rawDb}"`);
  await influxql(writerDb, `CREATE DATABASE "${writerDb}"`);
  const writer = new InfluxPointWriter({
    url: URL_,
    api: 'v1',
    bucket: writerDb,
    ...(process.env.BENCH_CONCURRENCY ? { concurrency: Number(process.env.BENCH_CONCURRENCY) } : {}),
    deadLetters: {
      add: async (letter) => {
        throw new Error(`benchmark data produced a dead letter: ${letter.reason}`);
      },
    },
  });
  try {
    // warm both paths (connection, series creation of the first rows) outside the clock
    await writer.write(points.slice(0, DEVICES), { source: 'bench' });
    await rawPosts(rawDb, [bodies[0].split('\n').slice(0, DEVICES).join('\n')]);

    // Interleaved rounds, alternating which goes first: InfluxDB's background work (cache
    // snapshots, compactions) after one run would otherwise slow whichever runs second.
    let rawMs = 0;
    let writerMs = 0;
    const result = { written: 0, deadLettered: 0 };
    const per = Math.ceil(TOTAL / ROUNDS / BATCH) * BATCH;
    for (let round = 0, from = 0; from < TOTAL; round++, from += per) {
      const slice = points.slice(from, from + per);
      const sliceBodies = bodies.slice(from / BATCH, (from + per) / BATCH);
      const runWriter = async () => {
        const started = performance.now();
        const r = await writer.write(slice, { source: 'bench' });
        writerMs += performance.now() - started;
        result.written += r.written;
        result.deadLettered += r.deadLettered;
      };
      const runRaw = async () => {
        rawMs += await rawPosts(rawDb, sliceBodies);
      };
      if (round % 2 === 0) {
        await runRaw();
        await runWriter();
      } else {
        await runWriter();
        await runRaw();
      }
    }
    if (result.written !== TOTAL || result.deadLettered !== 0)
      throw new Error(`writer result ${JSON.stringify(result)}`);

    // both databases must hold exactly the same data
    const countQ = `SELECT ${FIELDS.map((f) => `count(${f}), sum(${f})`).join(', ')} FROM device_data`;
    const [w] = await influxql(writerDb, countQ);
    const [r] = await influxql(rawDb, countQ);
    const same = JSON.stringify(w.slice(1)) === JSON.stringify(r.slice(1));
    const counted = (w.slice(1) as number[]).filter((_, i) => i % 2 === 0).reduce((a, b) => a + b, 0);

    const rawRate = TOTAL / (rawMs / 1000);
    const writerRate = TOTAL / (writerMs / 1000);
    const rssMb = process.resourceUsage().maxRSS / 1024;
    console.log(
      `raw POSTs (5000 lines, keep-alive): ${rawMs.toFixed(0)} ms  ${Math.round(rawRate).toLocaleString('en')} points/s`,
    );
    console.log(
      `InfluxPointWriter:                  ${writerMs.toFixed(0)} ms  ${Math.round(writerRate).toLocaleString('en')} points/s`,
    );
    console.log(`ratio writer/raw: ${((writerRate / rawRate) * 100).toFixed(1)} %   (target >= 70 %)`);
    console.log(`peak RSS: ${rssMb.toFixed(0)} MB`);
    console.log(
      `check: ${counted.toLocaleString('en')} field values in each database, identical counts and sums: ${same ? 'yes' : 'NO'}`,
    );
    if (!same || counted !== fieldValues) process.exitCode = 1;
  } finally {
    await writer.close();
    await influxql(writerDb, `DROP DATABASE "${writerDb}"`).catch(() => undefined);
    await influxql(rawDb, `DROP DATABASE "${rawDb}"`).catch(() => undefined);
  }
}

main().catch((err: unknown) => {
  console.error(`bench:writer failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});
