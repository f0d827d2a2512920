/**
 * The object graph of pull sync, built from the configuration in one place: the token budget, the
 * platform client (behind the shared request rate), the writer with its dead letters, the registry,
 * checkpoints and the backfill/status queues. `expeed-sync run`, `backfill --wait`, the gap check,
 * tests and the benchmark all wire pull sync through it, so they cannot drift apart.
 */
import { Queue } from 'bullmq';
import type { Config } from '../base/config.js';
import type { Logger } from '../base/log.js';
import type { SecretScrubber } from '../base/secrets.js';
import { QUEUE, bullConnection, closeRedis, createRedis, type RedisConnection, type BackfillJob, type StatusJob } from '../base/queues.js';
import { DeviceRegistry } from '../devices/registry.js';
import { clientOptionsFromConfig, ExpeedClient } from '../platform/client.js';
import { zoneOffsetMs } from '../platform/timestamp.js';
import type { TokenBudget, TokenBudgetOptions } from '../platform/token-budget.js';
import { tokenBudgetFromConfig } from '../platform/token-budget-config.js';
import type { PlatformClient } from '../platform/api.js';
import { InfluxPointWriter } from '../influx/point-writer.js';
import type { PointWriter } from '../influx/api.js';
import { createInfluxQuery, type InfluxQuery } from '../influx/query.js';
import { RedisDeadLetterStore } from '../dead-letters/store.js';
import { createBackfillWorker, type BackfillWorker, type BackfillWorkerOptions } from '../../workers/backfill.js';
import { createStatusWorker } from '../../workers/status.js';
import { BackfillQueue } from '../pull/backfill-queue.js';
import { Checkpoints } from '../pull/checkpoints.js';
import { GapFinder } from '../pull/gap-finder.js';
import { statusPollConcurrency } from '../pull/status-poll.js';
import { RequestRate, rateLimitedPlatform } from '../platform/request-rate.js';
import { PlatformNewestStore, QuietCheck } from '../pull/quiet-check.js';
import { markingWriter } from '../rollup/hour-marker.js';
import { ROLLUP_RP } from '../influx/database.js';
import { createRollupStack, type RollupStack } from '../rollup/rollup-stack.js';

export interface PullStackOptions {
  config: Config;
  logger: Logger;
  scrubber: SecretScrubber;
  /** a shared non-blocking connection; opened (and closed) here when not given */
  redis?: RedisConnection;
  /** overrides of the token budget (tests inject its clock) */
  tokenBudget?: Partial<Omit<TokenBudgetOptions, 'redis' | 'prefix'>>;
  /** overrides of the backfill worker (tests shorten lock and stall times) */
  worker?: Partial<BackfillWorkerOptions>;
  /** decorators of the platform client and the writer (the service meters them for /metrics) */
  wrapPlatform?: (platform: PlatformClient) => PlatformClient;
  wrapWriter?: (writer: PointWriter) => PointWriter;
  /** a nightly or catch-up window was complete without a walk (the service counts it) */
  onQuietSkip?: () => void;
  /** the clock of the dirty-hour set (tests inject one) */
  rollupClock?: () => number;
}

export interface PullStack {
  redis: RedisConnection;
  registry: DeviceRegistry;
  checkpoints: Checkpoints;
  tokens: TokenBudget;
  /** rate-limited client */
  platform: PlatformClient;
  writer: PointWriter;
  /** the writer itself, unwrapped (dead-letter retry needs its detailed write) */
  influxWriter: InfluxPointWriter;
  deadLetters: RedisDeadLetterStore;
  influx: InfluxQuery;
  gapFinder: GapFinder;
  backfillQueue: Queue<BackfillJob>;
  statusQueue: Queue<StatusJob>;
  backfills: BackfillQueue;
  /** each device's newest platform time from the last currentDatapoints call */
  platformNewest: PlatformNewestStore;
  /** hourly rollups: the dirty hours `writer` marks, their queue, worker and dispatcher */
  rollup: RollupStack;
  /** starts a backfill worker on this process (closed by close()) */
  startBackfillWorker(overrides?: Partial<BackfillWorkerOptions>): BackfillWorker;
  startStatusWorker(): ReturnType<typeof createStatusWorker>;
  /** workers first, then queues, the writer, the client and the budget, then Redis */
  close(): Promise<void>;
}

export function createPullStack(options: PullStackOptions): PullStack {
  const { config, logger, scrubber } = options;
  const ownRedis = !options.redis;
  const redis = options.redis ?? createRedis(config);
  const registry = new DeviceRegistry(redis, config.prefix);
  const checkpoints = new Checkpoints({ redis, prefix: config.prefix });
  const tokens = tokenBudgetFromConfig(config, redis, { scrubber, log: logger, ...options.tokenBudget });
  const client = new ExpeedClient({ ...clientOptionsFromConfig(config), tokens, scrubber });
  const rate = new RequestRate({ redis, prefix: config.prefix, perSecond: config.platformRateLimit });
  const platform = (options.wrapPlatform ?? ((p) => p))(rateLimitedPlatform(client, rate));
  const deadLetters = new RedisDeadLetterStore(redis, config.prefix, { maxBytes: config.deadLetters.maxBytes });
  const influxWriter = new InfluxPointWriter({ ...config.influx, deadLetters, logger });
  const influx = createInfluxQuery(config.influx);
  // with a raw retention (1.x) rollups go to the RP without duration; otherwise next to the raw rows
  const rollupWriter = config.influx.rawRetentionMs === undefined ? influxWriter : new InfluxPointWriter({ ...config.influx, rp: ROLLUP_RP, deadLetters, logger });
  const rollup = createRollupStack({ redis, prefix: config.prefix, influx: config.influx, query: influx, writer: rollupWriter, settleMs: config.rollupSettleMs, logger, now: options.rollupClock });
  // every raw write, pulled or pushed, marks the hours it touched once InfluxDB acknowledged it
  const writer = (options.wrapWriter ?? ((w) => w))(markingWriter(influxWriter, rollup.dirty));
  const gapFinder = new GapFinder({ query: influx, rawRetentionMs: config.influx.rawRetentionMs });
  const connection = bullConnection(redis);
  const backfillQueue = new Queue<BackfillJob>(QUEUE.backfill, { connection, prefix: config.prefix });
  const statusQueue = new Queue<StatusJob>(QUEUE.status, { connection, prefix: config.prefix });
  // BullMQ opens its own connections from these options; an unheard error is printed as a stack trace per reconnect
  for (const q of [backfillQueue, statusQueue]) q.on('error', (err) => logger.debug({ err: err.message, queue: q.name }, 'queue Redis connection error'));
  const backfills = new BackfillQueue({ queue: backfillQueue, checkpoints, windowMs: config.backfillWindowMs, rawRetentionMs: config.influx.rawRetentionMs, gridOffset: (t) => zoneOffsetMs(t, config.timezone) });
  const workers: Array<{ close(): Promise<void> }> = [];
  const platformNewest = new PlatformNewestStore(redis, config.prefix);

  return {
    redis,
    registry,
    checkpoints,
    tokens,
    platform,
    writer,
    influxWriter,
    deadLetters,
    influx,
    gapFinder,
    backfillQueue,
    statusQueue,
    backfills,
    platformNewest,
    rollup,
    startBackfillWorker(overrides = {}) {
      const w = createBackfillWorker({
        connection,
        prefix: config.prefix,
        platform,
        writer,
        deadLetters,
        registry,
        checkpoints,
        logger,
        concurrency: config.workerConcurrency,
        // each job makes at least one request: job starts cannot outrun the request rate either
        limiter: { max: config.platformRateLimit, duration: 1000 },
        pageLimit: config.pageLimit,
        quiet: new QuietCheck({ platform, store: platformNewest, registry, checkpoints, logger, onSkip: options.onQuietSkip }),
        ...options.worker,
        ...overrides,
      });
      workers.push(w);
      return w;
    },
    startStatusWorker() {
      // lanes from the rate: the rate, not a fixed lane count, bounds the calls a second
      const w = createStatusWorker({ connection, prefix: config.prefix, platform, writer, registry, logger, pollConcurrency: statusPollConcurrency(config.platformRateLimit) });
      workers.push(w);
      return w;
    },
    async close() {
      await Promise.allSettled(workers.splice(0).map((w) => w.close()));
      await rollup.close();
      rate.close();
      await Promise.allSettled([backfillQueue.close(), statusQueue.close()]);
      await writer.close();
      if (rollupWriter !== influxWriter) await rollupWriter.close();
      await client.close();
      await tokens.close();
      await influx.close();
      if (ownRedis) await closeRedis(redis);
    },
  };
}
