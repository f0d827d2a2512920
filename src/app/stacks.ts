/**
 * The parts the composition root (app.ts) builds an app from, one builder per part: the platform
 * stack (token budget, client, shared request rate, metering), the write stack (dead letters, the
 * InfluxDB writers, rollups, the marking writer every raw row goes through) and the pull queues.
 * Each builder only builds; app.ts decides what the app hands out and closes it all, in order.
 */
import { Queue } from 'bullmq';
import type { Config } from '../base/config.js';
import type { Logger } from '../base/log.js';
import type { SecretScrubber } from '../base/secrets.js';
import { bullConnection, type RedisConnection } from '../base/redis.js';
import { QUEUE, type BackfillJob, type StatusJob } from '../base/jobs.js';
import { clientOptionsFromConfig, ExpeedClient } from '../platform/client.js';
import { zoneOffsetMs } from '../platform/timestamp.js';
import type { TokenBudget } from '../platform/token/budget.js';
import { tokenBudgetFromConfig } from '../platform/token/budget-config.js';
import type { PlatformClient } from '../platform/api.js';
import { RequestRate, rateLimitedPlatform } from '../platform/request-rate.js';
import { PlatformPause } from '../platform/platform-pause.js';
import { InfluxPointWriter } from '../influx/point-writer.js';
import type { RetryPolicy } from '../influx/retry-policy.js';
import type { PointWriter } from '../influx/api.js';
import { createInfluxQuery, type InfluxQuery } from '../influx/query.js';
import { rollupRps } from '../influx/database.js';
import { RedisDeadLetterStore } from '../dead-letters/store.js';
import type { DeviceLabels, Metrics } from '../ops/metrics.js';
import { meterWriter } from '../ops/meter-writer.js';
import { countThrottled, meterPlatformClient } from '../ops/platform-metering.js';
import { BackfillQueue } from '../pull/backfill-queue.js';
import type { Checkpoints } from '../pull/checkpoints.js';
import { GapFinder } from '../pull/gap-finder.js';
import { markingWriter } from '../rollup/hour-marker.js';
import { createRollupStack, type RollupStack } from '../rollup/rollup-stack.js';

export interface PlatformStack {
  tokens: TokenBudget;
  client: ExpeedClient;
  rate: RequestRate;
  /** the client behind the shared request rate (EXPEED_RATE_LIMIT, across processes), metered */
  platform: PlatformClient;
}

/** The platform client over the token budget and the shared throttle pause, behind the request rate, metered. */
export function platformStack(
  config: Config,
  redis: RedisConnection,
  base: { scrubber: SecretScrubber; logger: Logger; metrics: Metrics },
  overrides: { clock?: () => number; fetch?: typeof fetch },
): PlatformStack {
  const { scrubber, logger, metrics } = base;
  const tokens = tokenBudgetFromConfig(config, redis, {
    scrubber,
    log: logger,
    onRefresh: () => metrics.tokenRefreshes.inc(),
    ...(overrides.clock ? { now: overrides.clock } : {}),
  });
  const throttle = new PlatformPause({
    redis,
    prefix: config.prefix,
    log: logger,
    onThrottled: countThrottled(metrics),
  });
  const client = new ExpeedClient({
    ...clientOptionsFromConfig(config),
    tokens,
    scrubber,
    throttle,
    ...(overrides.fetch ? { fetch: overrides.fetch } : {}),
  });
  const rate = new RequestRate({ redis, prefix: config.prefix, perSecond: config.platformRateLimit });
  const platform = meterPlatformClient(rateLimitedPlatform(client, rate), metrics);
  return { tokens, client, rate, platform };
}

export interface WriteStack {
  deadLetters: RedisDeadLetterStore;
  /** the raw InfluxDB writer: app.ts keeps it inside (every raw write goes through `writer`) */
  influxWriter: InfluxPointWriter;
  /** the rollups' writers: `influxWriter` itself unless a retention gives them their own RPs */
  rollupWriter: InfluxPointWriter;
  dayWriter: InfluxPointWriter;
  influx: InfluxQuery;
  rollup: RollupStack;
  /** marks rollup hours after acknowledged writes, metered */
  writer: PointWriter;
  gapFinder: GapFinder;
}

/** Dead letters, the InfluxDB writers and reads, rollups, and the marking writer over them. */
export function writeStack(
  config: Config,
  redis: RedisConnection,
  base: { logger: Logger; metrics: Metrics; labels: DeviceLabels },
  overrides: { writerRetry?: Partial<RetryPolicy>; rollupClock?: () => number },
): WriteStack {
  const { logger, metrics, labels } = base;
  const deadLetters = new RedisDeadLetterStore(redis, config.prefix, { maxBytes: config.deadLetters.maxBytes });
  const retry = overrides.writerRetry ? { retry: overrides.writerRetry as RetryPolicy } : {};
  const influxWriter = new InfluxPointWriter({ ...config.influx, deadLetters, logger, ...retry });
  const influx = createInfluxQuery(config.influx);
  // with a retention (1.x) rollups go to their own RPs (src/influx/database.ts); otherwise next to the raw rows
  const rps = rollupRps(config.influx);
  const rpWriter = (rp: string | undefined) =>
    rp === undefined ? influxWriter : new InfluxPointWriter({ ...config.influx, rp, deadLetters, logger, ...retry });
  const rollupWriter = rpWriter(rps.hourly);
  const dayWriter = rps.daily === rps.hourly ? rollupWriter : rpWriter(rps.daily);
  const rollup = createRollupStack({
    redis,
    prefix: config.prefix,
    influx: config.influx,
    query: influx,
    writer: rollupWriter,
    dayWriter,
    hourlyRp: rps.hourly,
    timezone: config.timezone,
    settleMs: config.rollupSettleMs,
    logger,
    now: overrides.rollupClock,
  });
  // every raw write, pulled, pushed or polled, marks the hours it touched once InfluxDB acknowledged it
  const writer = meterWriter(markingWriter(influxWriter, rollup.dirty), metrics, { deviceLabel: labels.label });
  const gapFinder = new GapFinder({ query: influx, rawRetentionMs: config.influx.rawRetentionMs });
  return { deadLetters, influxWriter, rollupWriter, dayWriter, influx, rollup, writer, gapFinder };
}

export interface QueueStack {
  backfillQueue: Queue<BackfillJob>;
  statusQueue: Queue<StatusJob>;
  backfills: BackfillQueue;
}

/** The backfill and status queues (their connection errors logged at debug) and the backfill windows over them. */
export function queueStack(
  config: Config,
  redis: RedisConnection,
  logger: Logger,
  checkpoints: Checkpoints,
): QueueStack {
  const connection = bullConnection(redis);
  const backfillQueue = new Queue<BackfillJob>(QUEUE.backfill, { connection, prefix: config.prefix });
  const statusQueue = new Queue<StatusJob>(QUEUE.status, { connection, prefix: config.prefix });
  // BullMQ opens its own connections from these options; an unheard error is printed as a stack trace per reconnect
  for (const q of [backfillQueue, statusQueue])
    q.on('error', (err) => logger.debug({ err: err.message, queue: q.name }, 'queue Redis connection error'));
  const backfills = new BackfillQueue({
    queue: backfillQueue,
    checkpoints,
    windowMs: config.backfillWindowMs,
    rawRetentionMs: config.influx.rawRetentionMs,
    gridOffset: (t) => zoneOffsetMs(t, config.timezone),
  });
  return { backfillQueue, statusQueue, backfills };
}
