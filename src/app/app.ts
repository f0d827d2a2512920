/**
 * The composition root: the one place that builds the object graph of an installation from its
 * configuration — Redis connections, the token budget, the platform client (behind the shared
 * request rate, metered), the writer (dead letters, rollup hour marks, metered), the stores, the
 * queues (the platform, write and queue stacks of ./stacks.ts) — and, on demand, the workers
 * (./workers.ts). The service, every CLI command, tests and the benchmark take what they need from
 * here, so they cannot drift apart. `close()` closes what was opened here, in order.
 */
import type { Queue } from 'bullmq';
import { secretsOf, type Config } from '../base/config.js';
import { createLogger, type Logger } from '../base/log.js';
import { SecretScrubber } from '../base/secrets.js';
import { closeRedis, type RedisConnection } from '../base/redis.js';
import type { BackfillJob, StatusJob } from '../base/jobs.js';
import { DeviceRegistry } from '../devices/registry.js';
import { PushRegistration } from '../devices/push-registration.js';
import type { TokenBudget } from '../platform/token/budget.js';
import type { PlatformClient } from '../platform/api.js';
import type { RetryPolicy } from '../influx/retry-policy.js';
import type { PointWriter } from '../influx/api.js';
import type { WriteApiVersion } from '../influx/api-detect.js';
import type { InfluxQuery } from '../influx/query.js';
import { RedisDeadLetterStore } from '../dead-letters/store.js';
import { createMetrics, DeviceLabels, type Metrics } from '../ops/metrics.js';
import type { BackfillQueue } from '../pull/backfill-queue.js';
import { Checkpoints } from '../pull/checkpoints.js';
import type { GapFinder } from '../pull/gap-finder.js';
import { PlatformNewestStore } from '../pull/quiet-check.js';
import { CooldownWaits } from '../pull/cooldown-waits.js';
import { VerifyLedger } from '../pull/verify-run.js';
import { CronScheduler, type Scheduler, type SchedulerOptions } from '../pull/scheduler.js';
import { ingestQueueOn, type OpenIngestQueue } from '../push/ingest-queue.js';
import { RedisNonceStore } from '../push/replay.js';
import { RedisHeadroom } from '../push/redis-headroom.js';
import type { RollupStack } from '../rollup/rollup-stack.js';
import { PendingSettingsStore } from '../devices/pending-settings.js';
import { appWorkers, type AppWorkers } from './workers.js';
import { failFastRedis, mainRedis } from './connections.js';
import {
  platformStack,
  queueStack,
  writeStack,
  type PlatformStack,
  type QueueStack,
  type WriteStack,
} from './stacks.js';

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
  const redis = overrides.redis ?? mainRedis(config, logger);
  const registry = new DeviceRegistry(redis, config.prefix);
  const labels = new DeviceLabels(() => registry.list());
  const checkpoints = new Checkpoints({ redis, prefix: config.prefix });
  const ps = platformStack(config, redis, { scrubber, logger, metrics }, overrides);
  const ws = writeStack(config, redis, { logger, metrics, labels }, overrides);
  const qs = queueStack(config, redis, logger, checkpoints);
  const { platform } = ps;
  const { influx, writer, deadLetters, rollup, gapFinder } = ws;
  const { backfillQueue, statusQueue, backfills } = qs;
  const parts = {
    config,
    logger,
    metrics,
    redis,
    registry,
    checkpoints,
    platform,
    influx,
    writer,
    deadLetters,
    rollup,
    backfillQueue,
    platformNewest: new PlatformNewestStore(redis, config.prefix),
    cooldownWaits: new CooldownWaits(redis, config.prefix),
    settings: new PendingSettingsStore(redis, config.prefix),
    pushRegistration: new PushRegistration({ registry, platform, redis, prefix: config.prefix, logger }),
  };
  const workers = appWorkers({ ...parts, clock: overrides.clock });
  const ingest = lazyIngestQueue(config, logger);
  const scheduled = { config, redis, registry, checkpoints, backfills, statusQueue, gapFinder, metrics, logger };

  return {
    ...parts,
    scrubber,
    labels,
    tokens: ps.tokens,
    influxApi: () => ws.influxWriter.api(),
    gapFinder,
    statusQueue,
    backfills,
    ...workers,
    ingestQueue: ingest.open,
    webhookIntake: async () => webhookIntake(config, await ingest.open()),
    scheduler: (schedulerOverrides = {}) => appScheduler(scheduled, schedulerOverrides),
    close: () => closeApp(workers, ingest, ps, ws, qs, overrides.redis ? undefined : redis),
  };
}

/**
 * Closes what createApp opened, in order: the workers, the ingest queue, rollups, the request rate,
 * the queues, the writers, the client, the token budget, InfluxDB reads, then Redis when the app
 * opened it (`own`).
 */
async function closeApp(
  workers: AppWorkers,
  ingest: { close(): Promise<void> },
  ps: PlatformStack,
  ws: WriteStack,
  qs: QueueStack,
  own: RedisConnection | undefined,
): Promise<void> {
  await workers.closeWorkers();
  await ingest.close();
  await ws.rollup.close();
  ps.rate.close();
  await Promise.allSettled([qs.backfillQueue.close(), qs.statusQueue.close()]);
  await ws.writer.close();
  for (const w of new Set([ws.rollupWriter, ws.dayWriter])) if (w !== ws.influxWriter) await w.close();
  await ps.client.close();
  await ps.tokens.close();
  await ws.influx.close();
  if (own) await closeRedis(own);
}

/** The ingest queue's producer on its own fail-fast connection, opened on first use; a failed open is tried again by the next call. */
function lazyIngestQueue(config: Config, logger: Logger): { open(): Promise<OpenIngestQueue>; close(): Promise<void> } {
  let opened: Promise<OpenIngestQueue> | undefined;
  return {
    open: () => {
      if (!opened) {
        const opening = ingestQueueOn(failFastRedis(config), config.prefix, logger);
        opening.catch(() => (opened = undefined));
        opened = opening;
      }
      return opened;
    },
    close: async () => {
      const ingest = opened;
      opened = undefined;
      if (ingest)
        await ingest.then(
          (q) => q.close(),
          () => undefined,
        );
    },
  };
}

/** What the webhook keeps in Redis, on the ingest queue's connection. */
function webhookIntake(config: Config, ingest: OpenIngestQueue): WebhookIntake {
  return {
    ingest,
    deadLetters: new RedisDeadLetterStore(ingest.connection, config.prefix, { maxBytes: config.deadLetters.maxBytes }),
    nonces: new RedisNonceStore(ingest.connection, config.prefix),
    headroom: new RedisHeadroom(ingest.connection, () => ingest.queue.count(), {
      memoryPercent: config.webhook.redisMemoryPercent,
      maxBacklog: config.webhook.maxBacklog,
    }),
  };
}

/** The schedules over the app's stores and queues; gaps found and skipped status slots are counted in `metrics`. */
function appScheduler(
  parts: Pick<
    App,
    'config' | 'redis' | 'registry' | 'checkpoints' | 'backfills' | 'statusQueue' | 'gapFinder' | 'metrics' | 'logger'
  >,
  schedulerOverrides: Partial<SchedulerOptions>,
): Scheduler {
  const { config, redis, registry, checkpoints, backfills, statusQueue, gapFinder, metrics, logger } = parts;
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
}
