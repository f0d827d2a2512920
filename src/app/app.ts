/**
 * The composition root: the one place that builds the object graph of an installation from its
 * configuration — Redis connections, the token budget, the platform client (behind the shared
 * request rate, metered), the writer (dead letters, rollup hour marks, metered), the stores, the
 * queues — and, on demand, the workers (./workers.ts). The service, every CLI command, tests and
 * the benchmark take what they need from here, so they cannot drift apart. `close()` closes what
 * was opened here, in order.
 */
import { Queue } from 'bullmq';
import { secretsOf, type Config } from '../base/config.js';
import { createLogger, type Logger } from '../base/log.js';
import { SecretScrubber } from '../base/secrets.js';
import { bullConnection, closeRedis, type RedisConnection } from '../base/redis.js';
import { QUEUE, type BackfillJob, type StatusJob } from '../base/jobs.js';
import { DeviceRegistry } from '../devices/registry.js';
import { PushRegistration } from '../devices/push-registration.js';
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
import type { WriteApiVersion } from '../influx/api-detect.js';
import { createInfluxQuery, type InfluxQuery } from '../influx/query.js';
import { rollupRps } from '../influx/database.js';
import { RedisDeadLetterStore } from '../dead-letters/store.js';
import { createMetrics, DeviceLabels, type Metrics } from '../ops/metrics.js';
import { meterWriter } from '../ops/meter-writer.js';
import { countThrottled, meterPlatformClient } from '../ops/platform-metering.js';
import { BackfillQueue } from '../pull/backfill-queue.js';
import { Checkpoints } from '../pull/checkpoints.js';
import { GapFinder } from '../pull/gap-finder.js';
import { PlatformNewestStore } from '../pull/quiet-check.js';
import { CooldownWaits } from '../pull/cooldown-waits.js';
import { VerifyLedger } from '../pull/verify-run.js';
import { CronScheduler, type Scheduler, type SchedulerOptions } from '../pull/scheduler.js';
import { ingestQueueOn, type OpenIngestQueue } from '../push/ingest-queue.js';
import { RedisNonceStore } from '../push/replay.js';
import { RedisHeadroom } from '../push/redis-headroom.js';
import { markingWriter } from '../rollup/hour-marker.js';
import { createRollupStack, type RollupStack } from '../rollup/rollup-stack.js';
import { PendingSettingsStore } from '../devices/pending-settings.js';
import { appWorkers, type AppWorkers } from './workers.js';
import { failFastRedis, mainRedis } from './connections.js';

/** What a caller may supply instead of what the configuration would build (tests inject these). */
export interface AppOverrides {
  /** default: a logger at LOG_LEVEL that scrubs `scrubber`'s secrets */
  logger?: Logger;
  /** default: the configuration's secrets */
  scrubber?: SecretScrubber;
  /** a shared connection: used, not closed, by the app (default: one opened and closed here) */
  redis?: RedisConnection;
  /** the platform client's fetch (default: the global one) */
  fetch?: typeof fetch;
  /** the token budget's clock, also the backfill and status workers' (their delays are on it) */
  clock?: () => number;
  /** the clock of the dirty-hour set */
  rollupClock?: () => number;
  /** default: new metrics without the process collectors (the service passes its own) */
  metrics?: Metrics;
  /** the writer's retry policy (default: the writer's own) */
  writerRetry?: Partial<RetryPolicy>;
}

export interface App extends AppWorkers {
  config: Config;
  logger: Logger;
  scrubber: SecretScrubber;
  metrics: Metrics;
  /** per-device metric labels: registered ids are read by `labels.refresh()` */
  labels: DeviceLabels;
  redis: RedisConnection;
  registry: DeviceRegistry;
  checkpoints: Checkpoints;
  tokens: TokenBudget;
  /** the platform client every part uses: rate-limited (EXPEED_RATE_LIMIT, across processes), metered */
  platform: PlatformClient;
  /** the write path of raw rows: marks rollup hours after acknowledged writes, metered */
  writer: PointWriter;
  /**
   * The write API InfluxDB speaks, asked once; on 1.x with EXPEED_RAW_RETENTION this also sets the
   * retention policies. (The writer itself stays inside: every raw write goes through `writer`.)
   */
  influxApi(): Promise<WriteApiVersion>;
  deadLetters: RedisDeadLetterStore;
  influx: InfluxQuery;
  gapFinder: GapFinder;
  backfillQueue: Queue<BackfillJob>;
  statusQueue: Queue<StatusJob>;
  backfills: BackfillQueue;
  /** each device's newest platform time from the last currentDatapoints call */
  platformNewest: PlatformNewestStore;
  /** backfill jobs waiting for a credentials cool-down */
  cooldownWaits: CooldownWaits;
  /** rollups: the dirty hours `writer` marks, the dirty days, the computers, the queue, the dispatcher, failing devices */
  rollup: RollupStack;
  /** commands sent with `set`, until their result or timeout */
  settings: PendingSettingsStore;
  /** devices seen in pushes join the registry after one successful platform call */
  pushRegistration: PushRegistration;
  /** the producer side of the `ingest` queue on its own fail-fast connection, opened on first use */
  ingestQueue(): Promise<OpenIngestQueue>;
  /**
   * What the webhook keeps in Redis, all on the ingest queue's fail-fast connection: a push that
   * cannot be stored while Redis is down is answered 503 at once, never left hanging.
   */
  webhookIntake(): Promise<WebhookIntake>;
  /**
   * The schedules over this app's stores and queues (the configuration's zone, cron expressions,
   * rate and backfill start; gaps found and skipped status slots counted in `metrics`), not started.
   */
  scheduler(overrides?: Partial<SchedulerOptions>): Scheduler;
  /** workers, the ingest queue, rollups, queues, the writers, the client, the budget, then Redis */
  close(): Promise<void>;
}

export interface WebhookIntake {
  ingest: OpenIngestQueue;
  deadLetters: RedisDeadLetterStore;
  nonces: RedisNonceStore;
  /** Redis near full (WEBHOOK_REDIS_MEMORY_PERCENT, WEBHOOK_MAX_BACKLOG): pushes are refused until the workers drain it */
  headroom: RedisHeadroom;
}

export function createApp(config: Config, overrides: AppOverrides = {}): App {
  const scrubber = overrides.scrubber ?? new SecretScrubber(secretsOf(config));
  const logger = overrides.logger ?? createLogger({ level: config.logLevel, scrubber });
  const metrics = overrides.metrics ?? createMetrics({ defaultMetrics: false });
  const ownRedis = !overrides.redis;
  const redis = overrides.redis ?? mainRedis(config, logger);
  const registry = new DeviceRegistry(redis, config.prefix);
  const labels = new DeviceLabels(() => registry.list());
  const checkpoints = new Checkpoints({ redis, prefix: config.prefix });

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
  const platformNewest = new PlatformNewestStore(redis, config.prefix);
  const cooldownWaits = new CooldownWaits(redis, config.prefix);
  const settings = new PendingSettingsStore(redis, config.prefix);
  const pushRegistration = new PushRegistration({ registry, platform, redis, prefix: config.prefix, logger });

  let opened: Promise<OpenIngestQueue> | undefined;
  const ingestQueue = (): Promise<OpenIngestQueue> => {
    if (!opened) {
      const opening = ingestQueueOn(failFastRedis(config), config.prefix, logger);
      // a failed open is tried again by the next call
      opening.catch(() => (opened = undefined));
      opened = opening;
    }
    return opened;
  };
  const parts = {
    config,
    logger,
    metrics,
    influx,
    redis,
    backfillQueue,
    registry,
    checkpoints,
    platform,
    writer,
    deadLetters,
    rollup,
    settings,
    pushRegistration,
    platformNewest,
    cooldownWaits,
    clock: overrides.clock,
  };
  const workers = appWorkers(parts);

  return {
    config,
    logger,
    scrubber,
    metrics,
    labels,
    redis,
    registry,
    checkpoints,
    tokens,
    platform,
    writer,
    influxApi: () => influxWriter.api(),
    deadLetters,
    influx,
    gapFinder,
    backfillQueue,
    statusQueue,
    backfills,
    platformNewest,
    cooldownWaits,
    rollup,
    settings,
    pushRegistration,
    ...workers,
    ingestQueue,
    async webhookIntake() {
      const ingest = await ingestQueue();
      return {
        ingest,
        deadLetters: new RedisDeadLetterStore(ingest.connection, config.prefix, {
          maxBytes: config.deadLetters.maxBytes,
        }),
        nonces: new RedisNonceStore(ingest.connection, config.prefix),
        headroom: new RedisHeadroom(ingest.connection, () => ingest.queue.count(), {
          memoryPercent: config.webhook.redisMemoryPercent,
          maxBacklog: config.webhook.maxBacklog,
        }),
      };
    },
    scheduler(schedulerOverrides = {}) {
      return new CronScheduler({
        redis,
        prefix: config.prefix,
        timezone: config.timezone,
        schedules: config.schedules,
        registry,
        checkpoints,
        backfills,
        statusQueue,
        gapFinder: {
          scanMany: async (ids, from, to) => {
            const found = await gapFinder.scanMany(ids, from, to);
            for (const f of found) if (f.gaps.length) metrics.gapsFound.inc({ device_id: f.deviceId }, f.gaps.length);
            return found;
          },
        },
        backfillStart: config.backfillStart,
        lookbackMs: config.lookbackMs,
        verifyLedger: new VerifyLedger(redis, config.prefix),
        statusRatePerSecond: config.platformRateLimit,
        onStatusSkipped: () => metrics.statusSlotsSkipped.inc(),
        logger,
        ...schedulerOverrides,
      });
    },
    async close() {
      await workers.closeWorkers();
      const ingest = opened;
      opened = undefined;
      if (ingest)
        await ingest.then(
          (q) => q.close(),
          () => undefined,
        );
      await rollup.close();
      rate.close();
      await Promise.allSettled([backfillQueue.close(), statusQueue.close()]);
      await writer.close();
      for (const w of new Set([rollupWriter, dayWriter])) if (w !== influxWriter) await w.close();
      await client.close();
      await tokens.close();
      await influx.close();
      if (ownRedis) await closeRedis(redis);
    },
  };
}
