/**
 * What bench/verify.ts and bench/lookback.ts share: the simulator in its own process with N devices
 * of `cadenceSec` rows and no holes, a fresh prefix and InfluxDB database, the devices registered,
 * the production worker (`node bin/expeed-sync.js run --role worker`, compiled) and "phases": a set
 * of backfill-queue requests (backfill, nightly, lookback windows) queued and run to the end, with
 * the history requests the simulator answered, the wall time, the CPU of the worker, the simulator
 * and influxd, what the jobs reported (points written, late rows) and the hours they marked dirty
 * for the rollups.
 */
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import type { Config } from '../src/base/config.js';
import { loadConfig } from '../src/base/load-config.js';
import { SecretScrubber } from '../src/base/secrets.js';
import { redisKey } from '../src/base/redis.js';
import type { BackfillJob } from '../src/base/jobs.js';
import { createApp } from '../src/app/app.js';
import {
  buildIfStale,
  cpuSeconds,
  drained,
  influxql,
  memory,
  pidOf,
  removePrefix,
  startService,
  startSimProcess,
  type ServiceProcess,
  type SimProcess,
} from './lib.js';

const PK = 'bench-platform-key';
const SK = 'bench-secret-key';

export interface PullBenchOptions {
  name: string;
  devices: number;
  cadenceSec: number;
  /** generated history [from, to) */
  from: number;
  to: number;
  /** ms the simulator waits before each answer (a platform round trip); default 0 */
  latencyMs?: number;
}

export interface PhaseResult {
  seconds: number;
  /** history requests the simulator answered during the phase */
  requests: number;
  windows: number;
  failed: number;
  /** points the jobs wrote (a lookback job: its late rows) */
  points: number;
  lateRows: number;
  /** (device, hour) pairs the phase marked dirty for the rollups (the set is emptied before each phase) */
  dirtyHours: number;
  /** CPU seconds over the phase */
  cpu: { worker: number; simulator: number; influxd: number };
}

export interface PullBench {
  sim: SimProcess;
  config: Config;
  /** the environment the worker and a spawned CLI get */
  env: Record<string, string | undefined>;
  db: string;
  ids: string[];
  /** the request rate loadConfig gives without EXPEED_RATE_LIMIT: the production default */
  defaultRate: number;
  entry: string;
  worker(): Promise<ServiceProcess>;
  phase(requests: BackfillJob[]): Promise<PhaseResult>;
  influxql(q: string): ReturnType<typeof influxql>;
  close(): Promise<void>;
}

export async function startPullBench(o: PullBenchOptions): Promise<PullBench> {
  const tag = randomBytes(3).toString('hex');
  const prefix = `bench-${o.name}-${tag}`;
  const db = `bench_${o.name}_${tag}`;
  const ids = Array.from({ length: o.devices }, (_, i) => `bench-${String(i).padStart(4, '0')}`);
  const entry = buildIfStale(process.cwd()) ? 'compiled (dist/)' : 'tsx (dist/ stale)';
  const sim = await startSimProcess({
    platformKey: PK,
    secretKey: SK,
    devices: ids.map((id, i) => ({ id, key: `key-${i}`, cadenceSec: o.cadenceSec })),
    from: o.from,
    to: o.to,
    seed: 1,
    gapRate: 0,
    latencyMs: o.latencyMs ?? 0,
  });
  const env: Record<string, string | undefined> = {
    ...process.env,
    EXPEED_BASE_URL: sim.url,
    EXPEED_PLATFORM_KEY: PK,
    EXPEED_SECRET_KEY: SK,
    EXPEED_PREFIX: prefix,
    REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    INFLUX_URL: (process.env.INFLUX_URL ?? 'http://127.0.0.1:8086').replace(/\/+$/, ''),
    INFLUX_API: process.env.INFLUX_API ?? 'v1',
    INFLUX_BUCKET: db,
    EXPEED_RATE_LIMIT: process.env.EXPEED_RATE_LIMIT ?? '1000',
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
  };
  const defaultRate = loadConfig({ ...env, EXPEED_RATE_LIMIT: undefined }).platformRateLimit;
  const config = loadConfig(env);
  const logger = pino({ level: config.logLevel }, pino.destination(2));
  const stack = createApp(config, { logger, scrubber: new SecretScrubber([PK, SK]) });
  for (const [i, id] of ids.entries()) await stack.registry.upsert({ id, key: `key-${i}` }, 'cli');
  const influx = env.INFLUX_URL!;
  let worker: ServiceProcess | undefined;
  const influxd = pidOf('influxd');
  const dirtyKey = redisKey(prefix, 'rollup', 'dirty');
  const startWorker = async () => (worker ??= await startService(env, ['worker']));

  return {
    sim,
    config,
    env,
    db,
    ids,
    defaultRate,
    entry,
    worker: startWorker,
    async phase(requests) {
      const w = await startWorker();
      const cpu = () => ({
        worker: cpuSeconds(w.pid) ?? NaN,
        simulator: cpuSeconds(sim.pid) ?? NaN,
        influxd: cpuSeconds(influxd) ?? NaN,
      });
      const before = await stack.backfillQueue.getJobs(['completed', 'failed'], 0, -1);
      const seen = new Set(before.map((j) => j.id));
      // the bench's own prefix: emptied so that what the phase marks can be counted
      await stack.redis.del(dirtyKey);
      const h0 = (await sim.stats()).requests.history ?? 0;
      const c0 = cpu();
      const started = performance.now();
      const windows = (await stack.backfills.enqueueMany(requests)).length;
      await drained(stack.backfillQueue);
      const seconds = (performance.now() - started) / 1000;
      const c1 = cpu();
      const h1 = (await sim.stats()).requests.history ?? 0;
      const done = (await stack.backfillQueue.getJobs(['completed'], 0, -1)).filter((j) => !seen.has(j.id));
      const failed = (await stack.backfillQueue.getJobs(['failed'], 0, -1)).filter((j) => !seen.has(j.id)).length;
      const dirtyHours = await stack.redis.zcard(dirtyKey);
      const sum = (k: 'points' | 'lateRows') =>
        done.reduce((s, j) => s + Number((j.returnvalue as Record<string, unknown> | undefined)?.[k] ?? 0), 0);
      return {
        seconds,
        requests: h1 - h0,
        windows,
        failed,
        points: sum('points'),
        lateRows: sum('lateRows'),
        dirtyHours,
        cpu: {
          worker: c1.worker - c0.worker,
          simulator: c1.simulator - c0.simulator,
          influxd: c1.influxd - c0.influxd,
        },
      };
    },
    influxql: (q) => influxql(influx, db, q),
    async close() {
      if (worker) await worker.stop();
      await stack.close();
      sim.close();
      await influxql(influx, db, `DROP DATABASE "${db}"`).catch(() => undefined);
      await removePrefix(env.REDIS_URL!, prefix);
    },
  };
}

/** The worker's peak resident set so far (VmHWM), bytes. */
export function peakRss(w: ServiceProcess): number {
  return memory(w.pid, 'VmHWM');
}
