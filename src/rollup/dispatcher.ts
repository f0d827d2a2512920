/**
 * Turns settled dirty hours, and dirty days, into `rollup` jobs; runs where the scheduler runs. One
 * job per device and tier at a time (its job id is the device's and tier's), so two rollups of the
 * same hour (or day) never race each other:
 * a later one could otherwise finish first and be overwritten by an older answer. Jobs are removed
 * when done or failed; the dirty set, not the queue, is what must be done — a lost job is
 * dispatched again on the next tick. A job is tried once: a device whose rollup failed is not
 * dispatched again (in either tier) until its backoff ends (RollupFailures: 1 min doubling to 1 h).
 */
import { repeat, type Repeating } from '../base/repeat.js';
import type { Queue } from 'bullmq';
import type { Logger } from '../base/log.js';
import type { RollupJob } from '../base/jobs.js';
import type { DirtyHour, DirtyHours } from './dirty-hours.js';
import type { DirtyDays } from './dirty-days.js';
import type { RollupFailures } from './rollup-failures.js';
import { withDefaults } from '../base/options.js';

export interface RollupDispatcherOptions {
  dirty: Pick<DirtyHours, 'settled'>;
  /** the dirty days (due once touched: their hours have settled); absent: hours only */
  days?: Pick<DirtyDays, 'settled'>;
  queue: Pick<Queue<RollupJob>, 'add'>;
  /** an hour is due once ended and untouched this long, ms */
  settleMs: number;
  /** how often settled hours are looked for, ms (default 15 s) */
  everyMs: number;
  /** hours (or days) per job (default 744, a month of hours: one job stays short) */
  hoursPerJob: number;
  /** settled hours read per tick (default 20000) */
  scanLimit: number;
  /** devices whose rollup failed lately: not dispatched while they back off */
  failures?: Pick<RollupFailures, 'backingOff'>;
  /** the backoff's clock (default Date.now) */
  now: () => number;
  logger: Logger;
}

export const DEFAULT_ROLLUP_DISPATCHER: Pick<RollupDispatcherOptions, 'everyMs' | 'hoursPerJob' | 'scanLimit' | 'now'> =
  {
    everyMs: 15_000,
    now: Date.now,
    hoursPerJob: 744,
    scanLimit: 20_000,
  };

/** The job id of a device's rollup job of a tier (BullMQ refuses `:` in ids). */
function rollupJobId(deviceId: string, tier?: '1d'): string {
  return `${tier === '1d' ? 'rollup-1d' : 'rollup'}|${encodeURIComponent(deviceId)}`;
}

export class RollupDispatcher {
  private readonly o: RollupDispatcherOptions;
  private ticking?: Repeating;

  constructor(
    options: Omit<RollupDispatcherOptions, keyof typeof DEFAULT_ROLLUP_DISPATCHER> & Partial<RollupDispatcherOptions>,
  ) {
    this.o = withDefaults(DEFAULT_ROLLUP_DISPATCHER, options);
  }

  /** Queues a job for every device with settled hours, and one for every device with dirty days (a no-op for a device whose job of that tier is queued or running). */
  async tick(): Promise<number> {
    const waiting = (await this.o.failures?.backingOff(this.o.now())) ?? new Set<string>();
    let jobs = await this.queue(await this.o.dirty.settled(this.o.settleMs, this.o.scanLimit), waiting);
    if (this.o.days) jobs += await this.queue(await this.o.days.settled(0, this.o.scanLimit), waiting, '1d');
    return jobs;
  }

  private async queue(due: readonly DirtyHour[], waiting: ReadonlySet<string>, tier?: '1d'): Promise<number> {
    const byDevice = new Map<string, RollupJob['hours']>();
    for (const d of due) {
      if (waiting.has(d.deviceId)) continue;
      const hours = byDevice.get(d.deviceId) ?? [];
      if (hours.length < this.o.hoursPerJob) hours.push([d.hour, d.score]);
      byDevice.set(d.deviceId, hours);
    }
    for (const [deviceId, hours] of byDevice) {
      const data: RollupJob = tier ? { deviceId, hours, tier } : { deviceId, hours };
      await this.o.queue.add('rollup', data, {
        jobId: rollupJobId(deviceId, tier),
        removeOnComplete: true,
        removeOnFail: true,
        attempts: 1,
      });
    }
    return byDevice.size;
  }

  start(): void {
    this.ticking ??= repeat(() => this.tick(), {
      everyMs: this.o.everyMs,
      onError: (err) =>
        this.o.logger.warn({ err: (err as Error).message }, 'rollup dispatch failed; trying again on the next tick'),
      immediately: true,
    });
  }

  async close(): Promise<void> {
    const ticking = this.ticking;
    this.ticking = undefined;
    await ticking?.stop();
  }
}
