/**
 * The `backfill` queue's processor: parse the job, run the window through BackfillRunner, report
 * progress, and turn failures into what BullMQ should do with the job:
 * - a spent token budget (or any error that names when a retry can work): delayed until then,
 *   without counting an attempt and without spending a token call;
 * - credentials the platform refused: delayed until the cool-down ends, no attempt counted, the job
 *   recorded as waiting (CooldownWaits); the token budget logged the refusal once, the jobs do not;
 * - retryable (platform 5xx, network, InfluxDB down): thrown, retried with capped exponential backoff;
 * - not retryable (device missing, wrong key, invalid parameters): UnrecoverableError at once, with
 *   the vendor's code and message, and the device marked in the registry.
 */
import {
  DelayedError,
  UnrecoverableError,
  Worker,
  type ConnectionOptions,
  type Job,
  type RateLimiterOptions,
} from 'bullmq';
import type { Logger } from '../src/base/log.js';
import { QUEUE, type BackfillJob } from '../src/base/jobs.js';
import type { DeadLetterStore, PointWriter } from '../src/influx/api.js';
import type { PlatformClient } from '../src/platform/api.js';
import { walkHistory } from '../src/platform/history-walker.js';
import type { DeviceRegistry } from '../src/devices/registry.js';
import type { Checkpoints } from '../src/pull/checkpoints.js';
import { BackfillRunner, type BackfillProgress, type HistoryWalk } from '../src/pull/backfill-runner.js';
import { BACKOFF_TYPE } from '../src/pull/backfill-queue.js';
import { failureFacts, messageOf } from '../src/base/failure.js';
import { backoffDelay, NO_JITTER } from '../src/base/backoff.js';
import { retryAt } from '../src/base/retry.js';
import { InfluxUnavailableError } from '../src/influx/errors.js';
import { skippedProgress, type QuietCheck } from '../src/pull/quiet-check.js';
import type { LookbackRunner } from '../src/pull/lookback.js';
import type { VerifyJobRunner } from '../src/pull/verify-run.js';
import type { CooldownWaits } from '../src/pull/cooldown-waits.js';
import { credentialsWaitUntil } from '../src/platform/token/errors.js';
import type { ReconnectRunner } from '../src/pull/reconnect.js';
import { withDefaults } from '../src/base/options.js';

export interface BackfillWorkerOptions {
  connection: ConnectionOptions;
  prefix: string;
  /** the app's client: behind the shared request rate (EXPEED_RATE_LIMIT) */
  platform: Pick<PlatformClient, 'history'>;
  writer: Pick<PointWriter, 'write'>;
  deadLetters: Pick<DeadLetterStore, 'add'>;
  registry: Pick<DeviceRegistry, 'get' | 'markFailure' | 'clearFailure'>;
  checkpoints: Checkpoints;
  logger: Logger;
  /** jobs processed at once by this worker (WORKER_CONCURRENCY, default 4) */
  concurrency: number;
  /** BullMQ limiter on job starts, across all workers of the queue */
  limiter?: RateLimiterOptions;
  /** history page size (EXPEED_PAGE_LIMIT, default 6000) */
  pageLimit: number;
  /** how long a job's lock lives without renewal: a killed worker's job is recovered after about this (default 30 s) */
  lockDurationMs: number;
  /** how often stalled jobs are looked for (default 30 s) */
  stalledIntervalMs: number;
  /** times a job may stall (its worker died) before it fails (default 10) */
  maxStalledCount: number;
  /** longest backoff between retries (default 5 min) */
  maxBackoffMs: number;
  /** the clock of the token budget, whose `resetsAt` is on it (default Date.now) */
  clock: () => number;
  /** replaces the history walk (default: the platform's cursor walker) */
  walk?: HistoryWalk;
  /** runs `lookback` jobs: compared with InfluxDB, only late rows written (src/pull/lookback.ts) */
  lookback?: Pick<LookbackRunner, 'run'>;
  /** runs `reconnect` jobs: a device's offline span re-read through the lookback (src/pull/reconnect.ts) */
  reconnect?: Pick<ReconnectRunner, 'run'>;
  /** runs scheduled `verify` jobs: verified and repaired (src/pull/verify-run.ts) */
  verify?: Pick<VerifyJobRunner, 'run'>;
  /** asks currentDatapoints before nightly and catch-up windows; a quiet device's window is not walked */
  quiet?: Pick<QuietCheck, 'skip'>;
  /** records the jobs that wait for a credentials cool-down (status counts them) */
  waits?: Pick<CooldownWaits, 'add' | 'done'>;
  autorun: boolean;
}

export const DEFAULT_BACKFILL_WORKER: Pick<
  BackfillWorkerOptions,
  | 'concurrency'
  | 'pageLimit'
  | 'lockDurationMs'
  | 'stalledIntervalMs'
  | 'maxStalledCount'
  | 'maxBackoffMs'
  | 'clock'
  | 'autorun'
> = {
  concurrency: 4,
  pageLimit: 6000,
  lockDurationMs: 30_000,
  stalledIntervalMs: 30_000,
  maxStalledCount: 10,
  maxBackoffMs: 5 * 60_000,
  clock: Date.now,
  autorun: true,
};

export type BackfillWorker = Worker<BackfillJob, BackfillProgress>;

type BackfillWorkerInput = Omit<BackfillWorkerOptions, keyof typeof DEFAULT_BACKFILL_WORKER> &
  Partial<BackfillWorkerOptions>;

export function createBackfillWorker(input: BackfillWorkerInput): BackfillWorker {
  const backfill = new BackfillProcessor(withDefaults(DEFAULT_BACKFILL_WORKER, input));
  const o = backfill.options;
  const worker = new Worker<BackfillJob, BackfillProgress>(
    QUEUE.backfill,
    (job, token) => backfill.process(job, token),
    {
      connection: o.connection,
      prefix: o.prefix,
      concurrency: o.concurrency,
      limiter: o.limiter,
      lockDuration: o.lockDurationMs,
      stalledInterval: o.stalledIntervalMs,
      maxStalledCount: o.maxStalledCount,
      autorun: o.autorun,
      settings: { backoffStrategy: backfillBackoff(o.maxBackoffMs) },
    },
  );
  worker.on('failed', (job, err) => backfill.jobFailed(job, err));
  worker.on('error', (err) => backfill.workerError(err));
  return worker;
}

/**
 * The retry delay of a failed job: for `BACKOFF_TYPE`, exponential from the job's delay (default 1 s),
 * capped at `maxBackoffMs`, no jitter, InfluxDB's Retry-After the floor; other types get the job's delay.
 */
function backfillBackoff(maxBackoffMs: number) {
  return (attemptsMade: number, type?: string, err?: Error, job?: { opts: { backoff?: unknown } }): number => {
    const base =
      typeof (job?.opts.backoff as { delay?: unknown })?.delay === 'number'
        ? (job?.opts.backoff as { delay: number }).delay
        : 1000;
    if (type !== BACKOFF_TYPE) return base;
    // exponential from the job's delay, capped, no jitter; InfluxDB's Retry-After is the floor
    const asked = err instanceof InfluxUnavailableError ? err.retryAfterMs : undefined;
    return backoffDelay(attemptsMade - 1, { baseMs: base, maxMs: maxBackoffMs, jitter: NO_JITTER }, asked);
  };
}

/** Runs a backfill job by its reason and turns its failure into what BullMQ should do with the job. */
class BackfillProcessor {
  private readonly runner: BackfillRunner;
  private readonly log: Logger;

  constructor(readonly options: BackfillWorkerOptions) {
    const o = options;
    const walk: HistoryWalk =
      o.walk ??
      ((device, range, call) =>
        walkHistory(o.platform, device, {
          from: range.from,
          to: range.to,
          limit: range.limit,
          resumeAt: range.resumeAt,
          call,
        }));
    this.runner = new BackfillRunner({
      walk,
      writer: o.writer,
      deadLetters: o.deadLetters,
      registry: o.registry,
      checkpoints: o.checkpoints,
      pageLimit: o.pageLimit,
    });
    this.log = o.logger.child({ queue: QUEUE.backfill });
  }

  async process(job: Job<BackfillJob, BackfillProgress>, token?: string): Promise<BackfillProgress> {
    const data = job.data;
    const where = `device ${data.deviceId} window ${new Date(data.from).toISOString()}..${new Date(data.to).toISOString()}`;
    try {
      return await this.run(job);
    } catch (err) {
      return this.failed(job, token, err, where);
    }
  }

  /** The job by its reason: lookback, reconnect, verify, or a window walked (unless the device was quiet). */
  private async run(job: Job<BackfillJob, BackfillProgress>): Promise<BackfillProgress> {
    const o = this.options;
    const data = job.data;
    // started again after a wait (for the cool-down, a budget, a backoff): no longer waiting
    if (job.attemptsStarted > 1 && job.id) await o.waits?.done(job.id);
    if (data.reason === 'lookback' && o.lookback) return await o.lookback.run(data, { useReserve: data.useReserve });
    if (data.reason === 'reconnect' && o.reconnect) return await o.reconnect.run(data, { useReserve: data.useReserve });
    if (data.reason === 'verify' && o.verify) return (await o.verify.run(data)) as unknown as BackfillProgress;
    if (await o.quiet?.skip(data, { useReserve: data.useReserve })) return skippedProgress(data);
    return await this.runner.run(data, { onProgress: (p) => job.updateProgress({ ...p }) });
  }

  /**
   * A failed run: delayed until the credentials cool-down ends or until a retry can work (no attempt
   * counted), failed for good when not retryable (the device marked when the error says so), else rethrown.
   */
  private async failed(
    job: Job<BackfillJob, BackfillProgress>,
    token: string | undefined,
    err: unknown,
    /** the job's device and window, as its errors name them */
    where: string,
  ): Promise<never> {
    const o = this.options;
    const data = job.data;
    const facts = failureFacts(err);
    const credentialsAt = credentialsWaitUntil(err);
    if (credentialsAt !== undefined && token && job.id) {
      await o.waits?.add(job.id, credentialsAt);
      const delay = Math.max(0, credentialsAt - o.clock()) + Math.floor(Math.random() * 1000);
      this.log.debug(
        { jobId: job.id, deviceId: data.deviceId, delayMs: delay },
        'backfill waits for the credentials cool-down',
      );
      await job.moveToDelayed(Date.now() + delay, token);
      throw new DelayedError();
    }
    const at = retryAt(err);
    if (at !== undefined && token) {
      // on the budget's clock; a little spread so that waiting jobs do not all ask at the same instant
      const delay = Math.max(0, at - o.clock()) + Math.floor(Math.random() * 1000);
      this.log.warn(
        { jobId: job.id, deviceId: data.deviceId, delayMs: delay, reason: messageOf(err) },
        'backfill delayed until a retry can work',
      );
      await job.moveToDelayed(Date.now() + delay, token);
      throw new DelayedError();
    }
    if (!facts.retryable) {
      if (facts.marksDevice && facts.code !== undefined)
        await o.registry.markFailure(data.deviceId, {
          code: facts.code,
          message: facts.vendorMessage ?? messageOf(err),
        });
      const message = messageOf(err);
      // a walk that cannot make progress already names device and window
      throw new UnrecoverableError(message.startsWith(where) ? message : `${where}: ${message}`);
    }
    this.log.warn(
      { jobId: job.id, deviceId: data.deviceId, attempt: job.attemptsMade + 1, reason: messageOf(err) },
      'backfill failed, will retry',
    );
    throw err;
  }

  /** The worker's `failed` event: a job that will not be tried again is logged as an error. */
  jobFailed(job: Job<BackfillJob, BackfillProgress> | undefined, err: Error): void {
    if (!job || err instanceof DelayedError) return;
    const final = err instanceof UnrecoverableError || job.attemptsMade >= (job.opts.attempts ?? 1);
    if (final)
      this.log.error({ jobId: job.id, deviceId: job.data.deviceId, reason: err.message }, 'backfill failed for good');
  }

  /** The worker's `error` event. */
  workerError(err: Error): void {
    this.log.error({ err: messageOf(err) }, 'backfill worker error; it keeps running');
  }
}
