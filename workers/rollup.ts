/**
 * The `rollup` queue's processor. An hour job recomputes a device's settled dirty hours from the
 * raw rows, touches their days in the dirty-day set, and then clears each hour only if nothing
 * touched it since it was read. A day job (`tier: '1d'`) recomputes dirty days from the hourly
 * rollups and clears each day the same way. Killed anywhere, the hours (and days) stay dirty and
 * are computed again: a day is touched before its hour is cleared, so no rolled-up hour can leave
 * its day behind (the job itself is recovered by BullMQ's stall check, or dispatched anew).
 */
import { UnrecoverableError, Worker, type ConnectionOptions, type Job } from 'bullmq';
import type { Logger } from '../src/base/log.js';
import { QUEUE, type RollupJob } from '../src/base/queues.js';
import type { DirtyHours } from '../src/rollup/dirty-hours.js';
import type { RollupComputer, RollupResult } from '../src/rollup/rollup-computer.js';
import type { DayComputer, DayResult } from '../src/rollup/day-computer.js';
import type { DirtyDays } from '../src/rollup/dirty-days.js';
import { messageOf } from '../src/base/failure.js';

export interface RollupWorkerOptions {
  connection: ConnectionOptions;
  prefix: string;
  computer: Pick<RollupComputer, 'hours'>;
  dirty: Pick<DirtyHours, 'clear'>;
  dayComputer: Pick<DayComputer, 'days'>;
  days: Pick<DirtyDays, 'touchHours' | 'clear'>;
  logger: Logger;
  /** jobs at once (default 2): each is one device, InfluxDB does the work */
  concurrency: number;
  /** BullMQ lock and stall check, ms (defaults 30 s each; tests shorten them) */
  lockDurationMs: number;
  stalledIntervalMs: number;
  autorun: boolean;
}

export const DEFAULT_ROLLUP_WORKER: Pick<RollupWorkerOptions, 'concurrency' | 'lockDurationMs' | 'stalledIntervalMs' | 'autorun'> = {
  concurrency: 2,
  lockDurationMs: 30_000,
  stalledIntervalMs: 30_000,
  autorun: true,
};

export interface RollupJobResult extends Partial<RollupResult>, Partial<DayResult> {
  /** hours (or days) removed from the dirty set (the others were touched meanwhile and stay dirty) */
  cleared: number;
}

export function createRollupWorker(input: Omit<RollupWorkerOptions, keyof typeof DEFAULT_ROLLUP_WORKER> & Partial<RollupWorkerOptions>): Worker<RollupJob, RollupJobResult> {
  const o: RollupWorkerOptions = { ...DEFAULT_ROLLUP_WORKER, ...input };
  const log = o.logger.child({ queue: QUEUE.rollup });

  async function process(job: Job<RollupJob, RollupJobResult>): Promise<RollupJobResult> {
    const { deviceId, hours } = job.data ?? ({} as RollupJob);
    if (typeof deviceId !== 'string' || (job.data.tier !== undefined && job.data.tier !== '1d') || !Array.isArray(hours) || hours.some((h) => !Array.isArray(h) || !Number.isSafeInteger(h[0]) || typeof h[1] !== 'string')) {
      throw new UnrecoverableError(`rollup job ${job.id} is malformed: ${JSON.stringify(job.data).slice(0, 200)}`);
    }
    const read = hours.map(([hour, score]) => ({ deviceId, hour, score }));
    if (job.data.tier === '1d') {
      const result = await o.dayComputer.days(deviceId, hours.map((h) => h[0]));
      const cleared = await o.days.clear(read);
      log.debug({ deviceId, ...result, cleared }, 'days rolled up');
      return { ...result, cleared };
    }
    const result = await o.computer.hours(deviceId, hours.map((h) => h[0]));
    // the day first: a crash before the clear leaves both dirty, never a rolled-up hour without its day
    await o.days.touchHours(deviceId, hours.map((h) => h[0]));
    const cleared = await o.dirty.clear(read);
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
  worker.on('error', (err) => log.error({ err: messageOf(err) }, 'rollup worker error; it keeps running'));
  worker.on('failed', (job, err) => log.warn({ deviceId: job?.data?.deviceId, err: messageOf(err) }, 'rollup job failed; its hours stay dirty and are dispatched again'));
  return worker;
}
