/**
 * The `rollup` queue's processor. An hour job recomputes a device's settled dirty hours from the
 * raw rows, touches their days in the dirty-day set, and then clears each hour only if nothing
 * touched it since it was read. A day job (`tier: '1d'`) recomputes dirty days from the hourly
 * rollups and clears each day the same way. Killed anywhere, the hours (and days) stay dirty and
 * are computed again: a day is touched before its hour is cleared, so no rolled-up hour can leave
 * its day behind (the job itself is recovered by BullMQ's stall check, or dispatched anew). A
 * failure is recorded in RollupFailures (the dispatcher backs the device off, `status` names it)
 * and logged through the log limiter with the reason cut short; a success clears the record.
 */
import { UnrecoverableError, Worker, type ConnectionOptions, type Job } from 'bullmq';
import type { Logger } from '../src/base/log.js';
import { QUEUE, type RollupJob } from '../src/base/jobs.js';
import type { DirtyHours } from '../src/rollup/dirty-hours.js';
import type { RollupComputer, RollupResult } from '../src/rollup/rollup-computer.js';
import type { DayComputer, DayResult } from '../src/rollup/day-computer.js';
import type { DirtyDays } from '../src/rollup/dirty-days.js';
import { messageOf } from '../src/base/failure.js';
import { LogLimiter } from '../src/base/log-limiter.js';
import { shortReason, type RollupFailures } from '../src/rollup/rollup-failures.js';
import { withDefaults } from '../src/base/options.js';

export interface RollupWorkerOptions {
  connection: ConnectionOptions;
  prefix: string;
  computer: Pick<RollupComputer, 'hours'>;
  dirty: Pick<DirtyHours, 'clear'>;
  dayComputer: Pick<DayComputer, 'days'>;
  days: Pick<DirtyDays, 'touchHours' | 'clear'>;
  /** records failing devices (their backoff, what status shows) */
  failures?: Pick<RollupFailures, 'failed' | 'succeeded'>;
  /** the failure record's clock (default Date.now) */
  now: () => number;
  /** at most one line about failed rollups per this many ms (default 10 s) */
  logEveryMs: number;
  logger: Logger;
  /** jobs at once (default 2): each is one device, InfluxDB does the work */
  concurrency: number;
  /** BullMQ lock and stall check, ms (defaults 30 s each; tests shorten them) */
  lockDurationMs: number;
  stalledIntervalMs: number;
  autorun: boolean;
}

export const DEFAULT_ROLLUP_WORKER: Pick<
  RollupWorkerOptions,
  'concurrency' | 'lockDurationMs' | 'stalledIntervalMs' | 'autorun' | 'now' | 'logEveryMs'
> = {
  concurrency: 2,
  now: Date.now,
  logEveryMs: 10_000,
  lockDurationMs: 30_000,
  stalledIntervalMs: 30_000,
  autorun: true,
};

export interface RollupJobResult extends Partial<RollupResult>, Partial<DayResult> {
  /** hours (or days) removed from the dirty set (the others were touched meanwhile and stay dirty) */
  cleared: number;
}

type RollupWorkerInput = Omit<RollupWorkerOptions, keyof typeof DEFAULT_ROLLUP_WORKER> & Partial<RollupWorkerOptions>;

export function createRollupWorker(input: RollupWorkerInput): Worker<RollupJob, RollupJobResult> {
  const rollup = new RollupProcessor(withDefaults(DEFAULT_ROLLUP_WORKER, input));
  const o = rollup.options;
  const worker = new Worker<RollupJob, RollupJobResult>(QUEUE.rollup, (job) => rollup.process(job), {
    connection: o.connection,
    prefix: o.prefix,
    concurrency: o.concurrency,
    lockDuration: o.lockDurationMs,
    stalledInterval: o.stalledIntervalMs,
    // a rollup is idempotent: recovering a stalled job any number of times is harmless
    maxStalledCount: 1_000_000,
    autorun: o.autorun,
  });
  worker.on('failed', (job, err) => rollup.jobFailed(job, err));
  worker.on('error', (err) => rollup.workerError(err));
  return worker;
}

/**
 * What the rollup worker does with a job and its failures; it keeps the log limiter and the errors
 * it has already recorded and logged.
 */
class RollupProcessor {
  private readonly log: Logger;
  private readonly limiter: LogLimiter;
  // failures of the computation, already recorded and logged
  private readonly recorded = new WeakSet<Error>();

  constructor(readonly options: RollupWorkerOptions) {
    this.log = options.logger.child({ queue: QUEUE.rollup });
    this.limiter = new LogLimiter({ everyMs: options.logEveryMs });
  }

  async process(job: Job<RollupJob, RollupJobResult>): Promise<RollupJobResult> {
    const { deviceId, hours } = job.data ?? ({} as RollupJob);
    if (
      typeof deviceId !== 'string' ||
      (job.data.tier !== undefined && job.data.tier !== '1d') ||
      !Array.isArray(hours) ||
      hours.some((h) => !Array.isArray(h) || !Number.isSafeInteger(h[0]) || typeof h[1] !== 'string')
    ) {
      throw new UnrecoverableError(`rollup job ${job.id} is malformed: ${JSON.stringify(job.data).slice(0, 200)}`);
    }
    return job.data.tier === '1d' ? this.days(deviceId, hours) : this.hours(deviceId, hours);
  }

  /** Recomputes the dirty days (`hours` holds day starts) from the hourly rollups, then clears them. */
  private async days(deviceId: string, hours: RollupJob['hours']): Promise<RollupJobResult> {
    const o = this.options;
    const result = await this.computed(deviceId, hours, (starts) => o.dayComputer.days(deviceId, starts));
    const cleared = await o.days.clear(hours.map(([hour, score]) => ({ deviceId, hour, score })));
    await o.failures?.succeeded(deviceId);
    this.log.debug({ deviceId, ...result, cleared }, 'days rolled up');
    return { ...result, cleared };
  }

  /** Recomputes the dirty hours from the raw rows, touches their days, then clears the hours. */
  private async hours(deviceId: string, hours: RollupJob['hours']): Promise<RollupJobResult> {
    const o = this.options;
    const result = await this.computed(deviceId, hours, (starts) => o.computer.hours(deviceId, starts));
    // the day first: a crash before the clear leaves both dirty, never a rolled-up hour without its day
    await o.days.touchHours(
      deviceId,
      hours.map((h) => h[0]),
    );
    const cleared = await o.dirty.clear(hours.map(([hour, score]) => ({ deviceId, hour, score })));
    await o.failures?.succeeded(deviceId);
    this.log.debug({ deviceId, ...result, cleared }, 'hours rolled up');
    return { ...result, cleared };
  }

  /** The computation over the buckets' starts; a failure is recorded and fails the job (see failed). */
  private async computed<R>(
    deviceId: string,
    hours: RollupJob['hours'],
    compute: (starts: number[]) => Promise<R>,
  ): Promise<R> {
    const starts = hours.map((h) => h[0]);
    try {
      return await compute(starts);
    } catch (err) {
      return this.failed(deviceId, starts, err);
    }
  }

  /** Records and logs a failed computation, then fails the job for good (the dispatcher retries after a backoff). */
  private async failed(deviceId: string, hours: number[], err: unknown): Promise<never> {
    const o = this.options;
    const f = await o.failures?.failed(deviceId, hours, messageOf(err), o.now());
    const reason = f?.reason ?? shortReason(messageOf(err));
    const fields = {
      deviceId,
      hours: hours.length,
      failures: f?.count,
      nextAt: f ? new Date(f.nextAt).toISOString() : undefined,
      reason,
    };
    this.limiter.log(
      this.log,
      'warn',
      'rollup-failed',
      fields,
      'rollup failed; its hours stay dirty and are tried again after a backoff',
    );
    const e = new UnrecoverableError(reason);
    this.recorded.add(e);
    throw e;
  }

  /** The worker's `failed` event: logs failures `failed` has not logged already. */
  jobFailed(job: Job<RollupJob, RollupJobResult> | undefined, err: Error): void {
    if (this.recorded.has(err)) return;
    this.limiter.log(
      this.log,
      'warn',
      'rollup-job-failed',
      { deviceId: job?.data?.deviceId, err: shortReason(messageOf(err)) },
      'rollup job failed; its hours stay dirty and are dispatched again',
    );
  }

  /** The worker's `error` event. */
  workerError(err: Error): void {
    this.limiter.log(
      this.log,
      'error',
      'rollup-worker-error',
      { err: shortReason(messageOf(err)) },
      'rollup worker error; it keeps running',
    );
  }
}
