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

export function createRollupWorker(
  input: Omit<RollupWorkerOptions, keyof typeof DEFAULT_ROLLUP_WORKER> & Partial<RollupWorkerOptions>,
): Worker<RollupJob, RollupJobResult> {
  const o: RollupWorkerOptions = withDefaults(DEFAULT_ROLLUP_WORKER, input);
  const log = o.logger.child({ queue: QUEUE.rollup });
  const limiter = new LogLimiter({ everyMs: o.logEveryMs });
  // failures of the computation, already recorded and logged
  const recorded = new WeakSet<Error>();

  async function failed(deviceId: string, hours: number[], err: unknown): Promise<never> {
    const f = await o.failures?.failed(deviceId, hours, messageOf(err), o.now());
    const reason = f?.reason ?? shortReason(messageOf(err));
    const fields = {
      deviceId,
      hours: hours.length,
      failures: f?.count,
      nextAt: f ? new Date(f.nextAt).toISOString() : undefined,
      reason,
    };
    limiter.log(
      log,
      'warn',
      'rollup-failed',
      fields,
      'rollup failed; its hours stay dirty and are tried again after a backoff',
    );
    const e = new UnrecoverableError(reason);
    recorded.add(e);
    throw e;
  }

  async function process(job: Job<RollupJob, RollupJobResult>): Promise<RollupJobResult> {
    const { deviceId, hours } = job.data ?? ({} as RollupJob);
    if (
      typeof deviceId !== 'string' ||
      (job.data.tier !== undefined && job.data.tier !== '1d') ||
      !Array.isArray(hours) ||
      hours.some((h) => !Array.isArray(h) || !Number.isSafeInteger(h[0]) || typeof h[1] !== 'string')
    ) {
      throw new UnrecoverableError(`rollup job ${job.id} is malformed: ${JSON.stringify(job.data).slice(0, 200)}`);
    }
    const read = hours.map(([hour, score]) => ({ deviceId, hour, score }));
    if (job.data.tier === '1d') {
      let result: DayResult;
      try {
        result = await o.dayComputer.days(
          deviceId,
          hours.map((h) => h[0]),
        );
      } catch (err) {
        return failed(
          deviceId,
          hours.map((h) => h[0]),
          err,
        );
      }
      const cleared = await o.days.clear(read);
      await o.failures?.succeeded(deviceId);
      log.debug({ deviceId, ...result, cleared }, 'days rolled up');
      return { ...result, cleared };
    }
    let result: RollupResult;
    try {
      result = await o.computer.hours(
        deviceId,
        hours.map((h) => h[0]),
      );
    } catch (err) {
      return failed(
        deviceId,
        hours.map((h) => h[0]),
        err,
      );
    }
    // the day first: a crash before the clear leaves both dirty, never a rolled-up hour without its day
    await o.days.touchHours(
      deviceId,
      hours.map((h) => h[0]),
    );
    const cleared = await o.dirty.clear(read);
    await o.failures?.succeeded(deviceId);
    log.debug({ deviceId, ...result, cleared }, 'hours rolled up');
    return { ...result, cleared };
  }

  const worker = new Worker<RollupJob, RollupJobResult>(QUEUE.rollup, process, {
    connection: o.connection,
    prefix: o.prefix,
    concurrency: o.concurrency,
    lockDuration: o.lockDurationMs,
    stalledInterval: o.stalledIntervalMs,
    // a rollup is idempotent: recovering a stalled job any number of times is harmless
    maxStalledCount: 1_000_000,
    autorun: o.autorun,
  });
  worker.on('failed', (job, err) => {
    if (recorded.has(err)) return;
    limiter.log(
      log,
      'warn',
      'rollup-job-failed',
      { deviceId: job?.data?.deviceId, err: shortReason(messageOf(err)) },
      'rollup job failed; its hours stay dirty and are dispatched again',
    );
  });
  worker.on('error', (err) =>
    limiter.log(
      log,
      'error',
      'rollup-worker-error',
      { err: shortReason(messageOf(err)) },
      'rollup worker error; it keeps running',
    ),
  );
  return worker;
}
