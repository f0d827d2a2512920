/**
 * `npm run bench:backfill`: devices x points from the simulator (in its own process) through the
 * backfill jobs (BullMQ worker in this process) into InfluxDB. Prints points/s, pages/s, token
 * calls and peak RSS of this process, and in the same run the raw InfluxDB ingest rate (5000-line
 * POSTs, bodies built before the clock starts) and the simulator's own serving rate (pages fetched
 * and parsed, nothing written), so that the bottleneck is visible.
 *
 * Environment: BENCH_DEVICES (100), BENCH_POINTS per device (100000), BENCH_CADENCE_SEC (10),
 * BENCH_SAMPLE_DEVICES for the serving-rate run (10), BENCH_RAW_POINTS (1000000), WORKER_CONCURRENCY (4),
 * EXPEED_BACKFILL_WINDOW (1d), EXPEED_RATE_LIMIT (1000: the production default of 20 req/s would
 * make the limiter the bottleneck), INFLUX_URL, REDIS_URL.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { loadConfig } from '../src/config.js';
import { SecretScrubber } from '../src/secrets.js';
import { createPullStack } from '../src/sync/pull-stack.js';
import { createRedis } from '../src/queues.js';

const env = process.env;
const DEVICES = Number(env.BENCH_DEVICES ?? 100);
const POINTS = Number(env.BENCH_POINTS ?? 100_000);
const CADENCE = Number(env.BENCH_CADENCE_SEC ?? 10);
const SAMPLE = Math.min(DEVICES, Number(env.BENCH_SAMPLE_DEVICES ?? 10));
const RAW_POINTS = Number(env.BENCH_RAW_POINTS ?? 1_000_000);
const INFLUX = (env.INFLUX_URL ?? 'http://127.0.0.1:8086').replace(/\/+$/, '');
const REDIS = env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const FROM = Date.UTC(2025, 0, 1);
const TO = FROM + POINTS * CADENCE * 1000;
const PK = 'bench-platform-key';
const SK = 'bench-secret-key';
const tag = randomBytes(3).toString('hex');
const prefix = `bench-backfill-${tag}`;
const db = `bench_backfill_${tag}`;
const rawDb = `bench_raw_${tag}`;

async function influxql(q: string, database = db): Promise<Array<{ values: unknown[][] }>> {
  const res = await fetch(`${INFLUX}/query?${new URLSearchParams({ db: database, q, epoch: 'ms' })}`, { method: 'POST' });
  const body = (await res.json()) as { results?: Array<{ error?: string; series?: Array<{ values: unknown[][] }> }> };
  if (!res.ok || body.results?.[0]?.error) throw new Error(`InfluxQL "${q}" failed: ${body.results?.[0]?.error ?? res.status}`);
  return body.results?.[0]?.series ?? [];
}

function startSim(): Promise<{ url: string; stats(): Promise<Record<string, unknown>>; close(): void }> {
  const devices = Array.from({ length: DEVICES }, (_, i) => ({ id: `bench-${String(i).padStart(3, '0')}`, key: `key-${i}`, cadenceSec: CADENCE }));
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/sim-server.ts', JSON.stringify({ platformKey: PK, secretKey: SK, devices, from: FROM, to: TO, seed: 1, gapRate: 0 })], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  const waiting: Array<(l: string) => void> = [];
  lines.on('line', (l) => waiting.shift()?.(l));
  const next = () => new Promise<string>((r) => waiting.push(r));
  return next().then((first) => ({
    url: (JSON.parse(first) as { url: string }).url,
    async stats() {
      const p = next();
      child.stdin!.write('stats\n');
      return JSON.parse(await p) as Record<string, unknown>;
    },
    close: () => child.kill('SIGTERM'),
  }));
}

function mb(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(0)} MB`;
}

async function main(): Promise<void> {
  const sim = await startSim();
  const config = loadConfig({
    ...env,
    EXPEED_BASE_URL: sim.url,
    EXPEED_PLATFORM_KEY: PK,
    EXPEED_SECRET_KEY: SK,
    EXPEED_PREFIX: prefix,
    REDIS_URL: REDIS,
    INFLUX_URL: INFLUX,
    INFLUX_API: env.INFLUX_API ?? 'v1',
    INFLUX_BUCKET: db,
    EXPEED_RATE_LIMIT: env.EXPEED_RATE_LIMIT ?? '1000',
    LOG_LEVEL: env.LOG_LEVEL ?? 'warn',
  });
  const logger = pino({ level: config.logLevel }, pino.destination(2));
  const stack = createPullStack({ config, logger, scrubber: new SecretScrubber([PK, SK]) });
  const lines: string[] = [];
  const say = (l: string) => {
    lines.push(l);
    process.stdout.write(`${l}\n`);
  };
  try {
    say(`backfill benchmark: ${DEVICES} devices x ${POINTS} points (${CADENCE} s cadence, ${((TO - FROM) / 86_400_000).toFixed(1)} days), window ${config.backfillWindowMs / 3_600_000} h, page ${config.pageLimit}, concurrency ${config.workerConcurrency}, rate ${config.platformRateLimit} req/s`);
    for (let i = 0; i < DEVICES; i++) await stack.registry.upsert({ id: `bench-${String(i).padStart(3, '0')}`, key: `key-${i}` }, 'cli');

    // 1. the jobs
    const baseline = process.memoryUsage().rss;
    let peak = baseline;
    let peakParts = process.memoryUsage();
    const sampler = setInterval(() => {
      const m = process.memoryUsage();
      if (m.rss > peak) [peak, peakParts] = [m.rss, m];
    }, 100);
    const started = performance.now();
    let windows = 0;
    for (const d of await stack.registry.list()) windows += (await stack.backfills.enqueue({ deviceId: d.id, from: FROM, to: TO, reason: 'manual' })).length;
    stack.startBackfillWorker();
    for (;;) {
      const c = await stack.backfillQueue.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
      if (c.waiting + c.active + c.delayed + c.prioritized === 0) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const seconds = (performance.now() - started) / 1000;
    clearInterval(sampler);
    const done = await stack.backfillQueue.getJobs(['completed'], 0, -1);
    const failed = await stack.backfillQueue.getJobCounts('failed');
    const points = done.reduce((s, j) => s + (j.returnvalue?.points ?? 0), 0);
    const pages = done.reduce((s, j) => s + (j.returnvalue?.pages ?? 0), 0);
    const stats = await sim.stats();
    const landed = Number((await influxql('SELECT count("temp") FROM device_data'))[0]?.values[0]?.[1] ?? 0);
    say(`jobs:        ${points} points in ${seconds.toFixed(1)} s = ${Math.round(points / seconds)} points/s, ${pages} pages = ${(pages / seconds).toFixed(1)} pages/s, ${windows} windows, ${failed.failed} failed`);
    say(`             token calls ${stats.tokenCalls as number}, history requests ${(stats.requests as Record<string, number>).history}, peak RSS ${mb(peak)} (this process: worker, writer, BullMQ; ${mb(baseline)} before the first job; the simulator runs apart)`);
    say(`             at the peak: V8 heap ${mb(peakParts.heapTotal)} (${mb(peakParts.heapUsed)} used), buffers outside the heap ${mb(peakParts.external)}`);
    say(`             points expected ${DEVICES * POINTS}, reported by jobs ${points}; temp values in InfluxDB ${landed}`);
    const jobRate = points / seconds;

    // 2. the simulator's serving rate: pages fetched and parsed, nothing written
    const token = await stack.tokens.get();
    const sample = (await stack.registry.list()).slice(0, SAMPLE);
    const servingStart = performance.now();
    let served = 0;
    let servedPages = 0;
    await Promise.all(
      Array.from({ length: config.workerConcurrency }, async (_, w) => {
        for (let i = w; i < sample.length; i += config.workerConcurrency) {
          const d = sample[i];
          let cursor: number | undefined;
          for (;;) {
            const page = await stack.platform.history({ id: d.id, key: d.key }, { first: 1, limit: config.pageLimit, cursor });
            served += page.rows.length;
            servedPages++;
            if (page.cursor === undefined || page.rows.length === 0 || (cursor !== undefined && page.cursor <= cursor)) break;
            cursor = page.cursor;
          }
        }
      }),
    );
    const servingSeconds = (performance.now() - servingStart) / 1000;
    const servingRate = served / servingSeconds;
    void token;
    say(`simulator:   ${served} rows in ${servedPages} pages from ${sample.length} devices in ${servingSeconds.toFixed(1)} s = ${Math.round(servingRate)} rows/s (fetched and parsed by the client, nothing written)`);

    // 3. raw InfluxDB ingest: the same shape as line protocol, 5000-line POSTs, bodies built first
    await influxql(`CREATE DATABASE "${rawDb}"`, rawDb);
    const bodies: string[] = [];
    for (let i = 0; i < RAW_POINTS; i += 5000) {
      const ls: string[] = [];
      for (let k = i; k < Math.min(RAW_POINTS, i + 5000); k++) {
        const t = FROM + Math.floor(k / DEVICES) * CADENCE * 1000;
        ls.push(`device_data,device_id=bench-${String(k % DEVICES).padStart(3, '0')} temp=${(k % 4000) / 100},humidity=${k % 100}i,voltage=${220 + (k % 10)} ${t}`);
      }
      bodies.push(ls.join('\n'));
    }
    const rawStart = performance.now();
    let nextBody = 0;
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (nextBody < bodies.length) {
          const body = bodies[nextBody++];
          const res = await fetch(`${INFLUX}/write?db=${rawDb}&precision=ms`, { method: 'POST', body });
          if (res.status !== 204) throw new Error(`raw write failed: HTTP ${res.status} ${await res.text()}`);
        }
      }),
    );
    const rawRate = RAW_POINTS / ((performance.now() - rawStart) / 1000);
    say(`raw ingest:  ${RAW_POINTS} points in 5000-line POSTs (4 in flight) = ${Math.round(rawRate)} points/s`);
    say(`result:      jobs at ${((jobRate / rawRate) * 100).toFixed(0)} % of raw ingest (target >= 70 %), ${((jobRate / servingRate) * 100).toFixed(0)} % of the simulator's serving rate; peak RSS ${mb(peak)} (target < 200 MB); token calls ${stats.tokenCalls as number} (target <= 1)`);
  } finally {
    await stack.close();
    sim.close();
    await influxql(`DROP DATABASE "${db}"`).catch(() => undefined);
    await influxql(`DROP DATABASE "${rawDb}"`, rawDb).catch(() => undefined);
    const redis = createRedis(REDIS);
    let cursor = '0';
    do {
      const [nextCursor, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = nextCursor;
      if (keys.length) await redis.del(...keys);
    } while (cursor !== '0');
    await redis.quit();
  }
}

await main();
