/**
 * `npm run bench:backfill`: devices x points from the simulator (in its own process) through the
 * backfill jobs into InfluxDB. The jobs run in the production process, started the way users run
 * it (`node bin/expeed-sync.js run --role worker`, compiled first with `npm run build`); this
 * process only registers the devices and queues the jobs. Prints points/s, pages/s, token calls,
 * the worker's peak RSS (VmHWM) and CPU, and the CPU the simulator, InfluxDB and Redis used over
 * the jobs (µs per point each), so that the bottleneck is visible; in the same run, the raw
 * InfluxDB ingest rate (5000-line POSTs, bodies built before the clock starts) and the simulator's
 * own serving rate (pages fetched and parsed, nothing written).
 *
 * Environment: BENCH_DEVICES (100), BENCH_POINTS per device (100000), BENCH_CADENCE_SEC (10),
 * BENCH_SAMPLE_DEVICES for the serving-rate run (10), BENCH_RAW_POINTS (1000000), and the service's
 * own variables, passed to the worker: WORKER_CONCURRENCY (4), EXPEED_BACKFILL_WINDOW (1d),
 * EXPEED_RATE_LIMIT (1000 here: the production default of 20 req/s would make the limiter the
 * bottleneck), EXPEED_HEAP_GROWTH_PERCENT, INFLUX_URL, REDIS_URL. BENCH_NODE_OPTIONS: node flags
 * for the worker process (e.g. --max-semi-space-size=16).
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { loadConfig } from '../src/base/load-config.js';
import { SecretScrubber } from '../src/base/secrets.js';
import { createApp } from '../src/app/app.js';
import { createRedis } from '../src/base/redis.js';
import { buildIfStale, cpuSeconds, influxql as influxqlAt, mb, memory, pidOf, startService } from './lib.js';

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

const influxql = (q: string, database = db) => influxqlAt(INFLUX, database, q);

function startSim(): Promise<{ url: string; pid: number; stats(): Promise<Record<string, unknown>>; close(): void }> {
  const devices = Array.from({ length: DEVICES }, (_, i) => ({
    id: `bench-${String(i).padStart(3, '0')}`,
    key: `key-${i}`,
    cadenceSec: CADENCE,
  }));
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'test/fixtures/sim-server.ts',
      JSON.stringify({ platformKey: PK, secretKey: SK, devices, from: FROM, to: TO, seed: 1, gapRate: 0 }),
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  const lines = createInterface({ input: child.stdout! });
  const waiting: Array<(l: string) => void> = [];
  lines.on('line', (l) => waiting.shift()?.(l));
  const next = () => new Promise<string>((r) => waiting.push(r));
  return next().then((first) => ({
    url: (JSON.parse(first) as { url: string }).url,
    pid: child.pid!,
    async stats() {
      const p = next();
      child.stdin!.write('stats\n');
      return JSON.parse(await p) as Record<string, unknown>;
    },
    close: () => child.kill('SIGTERM'),
  }));
}

async function main(): Promise<void> {
  const sim = await startSim();
  // the worker gets this benchmark's environment, exactly as a user would set it
  const workerEnv: Record<string, string | undefined> = {
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
  };
  const config = loadConfig(workerEnv);
  const logger = pino({ level: config.logLevel }, pino.destination(2));
  const stack = createApp(config, { logger, scrubber: new SecretScrubber([PK, SK]) });
  const lines: string[] = [];
  const say = (l: string) => {
    lines.push(l);
    process.stdout.write(`${l}\n`);
  };
  let worker: Awaited<ReturnType<typeof startService>> | undefined;
  try {
    const entry = buildIfStale(process.cwd()) ? 'compiled (dist/)' : 'tsx (dist/ stale)';
    say(
      `backfill benchmark: ${DEVICES} devices x ${POINTS} points (${CADENCE} s cadence, ${((TO - FROM) / 86_400_000).toFixed(1)} days), window ${config.backfillWindowMs / 3_600_000} h, page ${config.pageLimit}, concurrency ${config.workerConcurrency}, rate ${config.platformRateLimit} req/s`,
    );
    say(
      `             worker: node ${env.BENCH_NODE_OPTIONS ? `${env.BENCH_NODE_OPTIONS} ` : ''}bin/expeed-sync.js run --role worker, ${entry}, heap growth ${config.heapGrowthPercent || 'V8 default'}${config.heapGrowthPercent ? ' %' : ''}`,
    );
    for (let i = 0; i < DEVICES; i++)
      await stack.registry.upsert({ id: `bench-${String(i).padStart(3, '0')}`, key: `key-${i}` }, 'cli');

    // 1. the jobs, in the worker process
    worker = await startService(workerEnv, ['worker']);
    const baseline = memory(worker.pid, 'VmRSS');
    const others = {
      simulator: sim.pid,
      influxd: pidOf('influxd'),
      redis: pidOf('redis-server'),
      'this process': process.pid,
    };
    const w = worker;
    const cpuNow = () =>
      ({
        worker: cpuSeconds(w.pid) ?? NaN,
        ...Object.fromEntries(Object.entries(others).map(([k, pid]) => [k, cpuSeconds(pid) ?? NaN])),
      }) as Record<string, number>;
    const cpu0 = cpuNow();
    const started = performance.now();
    let windows = 0;
    for (const d of await stack.registry.list())
      windows += (await stack.backfills.enqueue({ deviceId: d.id, from: FROM, to: TO, reason: 'manual' })).length;
    for (;;) {
      const c = await stack.backfillQueue.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
      if (c.waiting + c.active + c.delayed + c.prioritized === 0) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const seconds = (performance.now() - started) / 1000;
    const cpu1 = cpuNow();
    const peak = memory(worker.pid, 'VmHWM');
    const exitCode = await worker.stop();
    worker = undefined;
    const done = await stack.backfillQueue.getJobs(['completed'], 0, -1);
    const failed = await stack.backfillQueue.getJobCounts('failed');
    const points = done.reduce((s, j) => s + (j.returnvalue?.points ?? 0), 0);
    const pages = done.reduce((s, j) => s + (j.returnvalue?.pages ?? 0), 0);
    const stats = await sim.stats();
    say(
      `jobs:        ${points} points in ${seconds.toFixed(1)} s = ${Math.round(points / seconds)} points/s, ${pages} pages = ${(pages / seconds).toFixed(1)} pages/s, ${windows} windows, ${failed.failed} failed`,
    );
    say(
      `             token calls ${stats.tokenCalls as number}, history requests ${(stats.requests as Record<string, number>).history}; worker peak RSS ${mb(peak)} (VmHWM; ${mb(baseline)} when ready, before the first job), exit code ${exitCode} after SIGTERM`,
    );
    const cpuLine = Object.keys(cpu0)
      .map((k) => {
        const used = cpu1[k] - cpu0[k];
        return Number.isNaN(used)
          ? `${k} n/a`
          : `${k} ${used.toFixed(1)} s = ${((used / seconds) * 100).toFixed(0)} % = ${((used * 1e6) / Math.max(1, points)).toFixed(2)} µs/point`;
      })
      .join('; ');
    say(`             CPU over the jobs: ${cpuLine}`);
    if (points !== DEVICES * POINTS || failed.failed > 0)
      throw new Error(`the jobs reported ${points} points (expected ${DEVICES * POINTS}) with ${failed.failed} failed`);
    if (exitCode !== 0) throw new Error(`the worker exited with code ${exitCode} on SIGTERM`);
    const jobRate = points / seconds;

    // 2. the simulator's serving rate: pages fetched and parsed, nothing written. The values each
    // field of the sampled devices has in the window are counted on the way, to check what landed.
    const sample = (await stack.registry.list()).slice(0, SAMPLE);
    const servingStart = performance.now();
    let served = 0;
    let servedPages = 0;
    const expected = new Map<string, Record<string, number>>();
    await Promise.all(
      Array.from({ length: config.workerConcurrency }, async (_, w) => {
        for (let i = w; i < sample.length; i += config.workerConcurrency) {
          const d = sample[i];
          const counts: Record<string, number> = {};
          expected.set(d.id, counts);
          let cursor: number | undefined;
          let last = -Infinity;
          for (;;) {
            const page = await stack.platform.history(
              { id: d.id, key: d.key },
              { first: 1, limit: config.pageLimit, cursor },
            );
            served += page.rows.length;
            servedPages++;
            for (const r of page.rows) {
              // rows in the jobs' range, each once (a page may repeat the previous page's last row)
              if (r.time <= last || r.time < FROM || r.time >= TO) continue;
              last = r.time;
              for (const f in r.values)
                if (r.values[f] !== null && r.values[f] !== undefined) counts[f] = (counts[f] ?? 0) + 1;
            }
            if (page.cursor === undefined || page.rows.length === 0 || (cursor !== undefined && page.cursor <= cursor))
              break;
            cursor = page.cursor;
          }
        }
      }),
    );
    const servingSeconds = (performance.now() - servingStart) / 1000;
    const servingRate = served / servingSeconds;
    say(
      `simulator:   ${served} rows in ${servedPages} pages from ${sample.length} devices in ${servingSeconds.toFixed(1)} s = ${Math.round(servingRate)} rows/s (fetched and parsed by the client, nothing written)`,
    );

    // what landed: every field of every sampled device holds as many values as the platform served
    const ids = sample.map((d) => d.id);
    const series = (await influxql(
      `SELECT count(*) FROM device_data WHERE device_id =~ /^(${ids.join('|')})$/ GROUP BY device_id`,
    )) as Array<{ tags?: { device_id: string }; columns?: string[]; values: unknown[][] }>;
    let landedValues = 0;
    let expectedValues = 0;
    const mismatches: string[] = [];
    for (const id of ids) {
      const s = series.find((x) => x.tags?.device_id === id);
      const want = expected.get(id) ?? {};
      for (const [field, n] of Object.entries(want)) {
        const col = s?.columns?.indexOf(`count_${field}`) ?? -1;
        const got = col >= 0 ? Number(s!.values[0][col]) : 0;
        expectedValues += n;
        landedValues += got;
        if (got !== n) mismatches.push(`${id}.${field}: ${got} landed, ${n} served`);
      }
    }
    say(
      `landed:      ${landedValues} field values in InfluxDB for the ${ids.length} sampled devices, ${expectedValues} served by the platform in the window${mismatches.length ? `; MISMATCH ${mismatches.slice(0, 5).join(', ')}` : ' (every field of every sampled device matches)'}`,
    );
    if (mismatches.length || expectedValues === 0)
      throw new Error('what landed in InfluxDB differs from what the platform served');

    // 3. raw InfluxDB ingest: the same shape as line protocol, 5000-line POSTs, bodies built first
    await influxql(`CREATE DATABASE "${rawDb}"`, rawDb);
    const bodies: string[] = [];
    for (let i = 0; i < RAW_POINTS; i += 5000) {
      const ls: string[] = [];
      for (let k = i; k < Math.min(RAW_POINTS, i + 5000); k++) {
        const t = FROM + Math.floor(k / DEVICES) * CADENCE * 1000;
        ls.push(
          `device_data,device_id=bench-${String(k % DEVICES).padStart(3, '0')} temp=${(k % 4000) / 100},humidity=${k % 100}i,voltage=${220 + (k % 10)} ${t}`,
        );
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
    say(
      `result:      jobs at ${((jobRate / rawRate) * 100).toFixed(0)} % of raw ingest (target >= 70 %), ${((jobRate / servingRate) * 100).toFixed(0)} % of the simulator's serving rate; worker peak RSS ${mb(peak)} (target < 200 MB); token calls ${stats.tokenCalls as number} (target <= 1)`,
    );
  } finally {
    if (worker) await worker.stop();
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
