/**
 * The workers of an app, built on demand over its collaborators: backfill (with the quiet check),
 * status poll, rollup and ingest. Each start returns the worker; `closeWorkers()` closes every one
 * still open (the service closes them itself first, within its grace period).
 */
import type { Queue, Worker } from 'bullmq';
import type { Config } from '../base/config.js';
import type { Logger } from '../base/log.js';
import { bullConnection, closeRedis, type RedisConnection } from '../base/redis.js';
import { type BackfillJob, type RollupJob, type StatusJob } from '../base/jobs.js';
import type { DeviceRegistry } from '../devices/registry.js';
import type { PushRegistration } from '../devices/push-registration.js';
import type { PointWriter } from '../influx/api.js';
import type { RedisDeadLetterStore } from '../dead-letters/store.js';
import type { Metrics } from '../ops/metrics.js';
import type { PlatformClient } from '../platform/api.js';
import { parsePlatformTime } from '../platform/timestamp.js';
import type { Checkpoints } from '../pull/checkpoints.js';
import { PlatformNewestStore, QuietCheck } from '../pull/quiet-check.js';
import type { StatusPollResult } from '../pull/status-poll.js';
import type { RollupStack } from '../rollup/rollup-stack.js';
import type { PendingSettingsStore } from '../devices/pending-settings.js';
import { createBackfillWorker, type BackfillWorker, type BackfillWorkerOptions } from '../../workers/backfill.js';
import { createIngestWorker, type IngestWorker, type IngestWorkerOptions } from '../../workers/ingest.js';
import { createRollupWorker, type RollupJobResult, type RollupWorkerOptions } from '../../workers/rollup.js';
import { createStatusWorker, type StatusWorkerOptions } from '../../workers/status.js';
import { statusPollConcurrency } from '../pull/status-poll.js';
import { workerRedis } from './connections.js';
import type { InfluxQuery } from '../influx/query.js';
import { LateRows, LookbackRunner } from '../pull/lookback.js';
import { VerifyJobRunner, VerifyLedger } from '../pull/verify-run.js';
import type { CooldownWaits } from '../pull/cooldown-waits.js';
import { learningWalk, PlatformProfileStore } from '../platform/platform-profile.js';
import type { HistoryWalk } from '../pull/backfill-runner.js';
import { ReconnectRunner, ReconnectWatch } from '../pull/reconnect.js';
import { zoneOffsetMs } from '../platform/timestamp.js';

export interface WorkerParts {
  config: Config;
  logger: Logger;
  metrics: Metrics;
  redis: RedisConnection;
  registry: DeviceRegistry;
  checkpoints: Checkpoints;
  platform: PlatformClient;
  writer: PointWriter;
  deadLetters: RedisDeadLetterStore;
  rollup: RollupStack;
  settings: PendingSettingsStore;
  pushRegistration: PushRegistration;
  platformNewest: PlatformNewestStore;
  /** backfill jobs waiting for a credentials cool-down */
  cooldownWaits: CooldownWaits;
  /** where status observations queue reconnect re-reads (delayed `reconnect` jobs) */
  backfillQueue: Queue<BackfillJob>;
  /** InfluxQL reads (the lookback compares with what InfluxDB holds) */
  influx: Pick<InfluxQuery, 'rows'>;
  /** the token budget's clock (the workers delay jobs to its reset on it) */
  clock?: () => number;
}

export interface AppWorkers {
  /** a backfill worker on this process (WORKER_CONCURRENCY, job starts limited to EXPEED_RATE_LIMIT) */
  startBackfillWorker(overrides?: Partial<BackfillWorkerOptions>): BackfillWorker;
  startStatusWorker(overrides?: Partial<StatusWorkerOptions>): Worker<StatusJob, StatusPollResult>;
  startRollupWorker(overrides?: Partial<RollupWorkerOptions>): Worker<RollupJob, RollupJobResult>;
  /** the ingest worker on a blocking connection of its own (closed with it); registers pushed devices when EXPEED_AUTO_REGISTER */
  startIngestWorker(overrides?: Partial<IngestWorkerOptions>): IngestWorker;
  /** closes every worker started here and not closed yet */
  closeWorkers(): Promise<void>;
}

/** The backfill's walk: it starts with what earlier walks (of any replica) learned about the platform, and adds to it. */
function profiledWalk(p: WorkerParts): HistoryWalk {
  const profiled = learningWalk(
    p.platform,
    new PlatformProfileStore({ redis: p.redis, prefix: p.config.prefix, log: p.logger }),
    p.logger,
  );
  return (device, range, call) => profiled(device, { ...range, call });
}

function lookbackRunner(p: WorkerParts, walk: HistoryWalk): LookbackRunner {
  return new LookbackRunner({
    walk,
    query: p.influx,
    pageLimit: p.config.pageLimit,
    writer: p.writer,
    registry: p.registry,
    lateRows: new LateRows(p.redis, p.config.prefix),
    onLateRows: (deviceId, n) => p.metrics.lateRows.inc({ device_id: deviceId }, n),
  });
}

function verifyRunner(p: WorkerParts, walk: HistoryWalk): VerifyJobRunner {
  const { config } = p;
  return new VerifyJobRunner({
    walk,
    query: p.influx,
    pageLimit: config.pageLimit,
    writer: p.writer,
    markHours: (touched) => p.rollup.dirty.mark(touched),
    windowMs: config.backfillWindowMs,
    registry: p.registry,
    ledger: new VerifyLedger(p.redis, config.prefix),
    onTotals: (t) => {
      for (const [result, n] of Object.entries(t)) if (n) p.metrics.verifyHours.inc({ result }, n);
    },
  });
}

/** The backfill worker's options from the app's parts: its walk, the lookback, reconnect and verify runners, the quiet check. */
function backfillWorkerOptions(p: WorkerParts, walk: HistoryWalk) {
  const { config, logger } = p;
  return {
    connection: bullConnection(p.redis),
    prefix: config.prefix,
    platform: p.platform,
    writer: p.writer,
    deadLetters: p.deadLetters,
    registry: p.registry,
    checkpoints: p.checkpoints,
    logger,
    concurrency: config.workerConcurrency,
    // each job makes at least one request: job starts cannot outrun the request rate either
    limiter: { max: config.platformRateLimit, duration: 1000 },
    pageLimit: config.pageLimit,
    walk,
    lookback: lookbackRunner(p, walk),
    reconnect: new ReconnectRunner({
      query: p.influx,
      lookback: lookbackRunner(p, walk),
      windowMs: config.backfillWindowMs,
      gridOffset: (t) => zoneOffsetMs(t, config.timezone),
    }),
    verify: verifyRunner(p, walk),
    waits: p.cooldownWaits,
    quiet: new QuietCheck({
      platform: p.platform,
      store: p.platformNewest,
      registry: p.registry,
      checkpoints: p.checkpoints,
      logger,
      onSkip: () => p.metrics.walksSkipped.inc(),
      ...(p.clock ? { now: p.clock } : {}),
    }),
  };
}

export function appWorkers(p: WorkerParts): AppWorkers {
  const { config, logger } = p;
  const open: Array<{ close(): Promise<void> }> = [];
  const clock = p.clock ? { clock: p.clock } : {};
  const presence = new ReconnectWatch({
    redis: p.redis,
    prefix: config.prefix,
    queue: p.backfillQueue,
    settleMs: config.reconnectSettleMs,
  });
  const walk = profiledWalk(p);
  function started<W extends { close(): Promise<void> }>(w: W): W {
    open.push(w);
    return w;
  }

  return {
    startBackfillWorker(overrides = {}) {
      return started(createBackfillWorker({ ...backfillWorkerOptions(p, walk), ...clock, ...overrides }));
    },
    startStatusWorker(overrides = {}) {
      return started(
        createStatusWorker({
          connection: bullConnection(p.redis),
          prefix: config.prefix,
          platform: p.platform,
          writer: p.writer,
          registry: p.registry,
          logger,
          pollConcurrency: statusPollConcurrency(config.platformRateLimit),
          presence,
          ...clock,
          ...overrides,
        }),
      );
    },
    startRollupWorker(overrides = {}) {
      return started(
        createRollupWorker({
          connection: bullConnection(p.redis),
          prefix: config.prefix,
          computer: p.rollup.computer,
          dirty: p.rollup.dirty,
          dayComputer: p.rollup.dayComputer,
          days: p.rollup.days,
          failures: p.rollup.failures,
          logger,
          ...overrides,
        }),
      );
    },
    startIngestWorker(overrides = {}) {
      // BullMQ leaves a connection it was handed open: this one is closed with the worker
      const connection = workerRedis(config, logger);
      const ingest = createIngestWorker({
        connection,
        prefix: config.prefix,
        writer: p.writer,
        deadLetters: p.deadLetters,
        settings: p.settings,
        registry: config.webhook.autoRegister ? p.pushRegistration : undefined,
        parseTime: (raw) => parsePlatformTime(raw, config.timezone),
        pushOnlineCode: config.webhook.pushOnlineCode,
        presence,
        logger,
        ...overrides,
      });
      return started(ingest.onClosed(() => closeRedis(connection)));
    },
    async closeWorkers() {
      await Promise.allSettled(open.splice(0).map((w) => w.close()));
    },
  };
}
