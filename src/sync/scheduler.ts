import cron, { type ScheduledTask } from 'node-cron';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { SchedulesConfig } from '../config.js';
import type { Logger } from '../log.js';
import { redisKey, type StatusJob } from '../queues.js';
import type { DeviceRegistry } from '../devices/registry.js';
import type { BackfillQueue } from './backfill-queue.js';
import type { Checkpoints } from './checkpoints.js';
import type { GapFinder } from './gap-finder.js';
import { messageOf } from './failure.js';

export type ScheduleName = keyof SchedulesConfig;

export interface SchedulerOptions {
  redis: Pick<Redis, 'set'>;
  prefix: string;
  /** IANA zone the cron expressions are read in (EXPEED_TIMEZONE) */
  timezone: string;
  schedules: SchedulesConfig;
  registry: Pick<DeviceRegistry, 'list'>;
  checkpoints: Pick<Checkpoints, 'get'>;
  backfills: Pick<BackfillQueue, 'enqueue'>;
  statusQueue: Pick<Queue<StatusJob>, 'add'>;
  gapFinder: Pick<GapFinder, 'scan'>;
  /** where a device without a checkpoint starts (EXPEED_BACKFILL_START) */
  backfillStart: number;
  logger: Pick<Logger, 'info' | 'warn' | 'error'>;
  /** the gap check looks this far back (ms, default 24 h) */
  gapLookbackMs: number;
  /** and leaves out the newest ms, which pushes and the nightly run may still fill (default 10 min) */
  gapSettleMs: number;
}

export const DEFAULT_SCHEDULER: Pick<SchedulerOptions, 'gapLookbackMs' | 'gapSettleMs'> = { gapLookbackMs: 86_400_000, gapSettleMs: 10 * 60_000 };

export interface SlotResult {
  schedule: ScheduleName;
  slot: number;
  /** false: another scheduler process already took this slot */
  ran: boolean;
  jobs: number;
}

export interface Scheduler {
  start(): void;
  /** what one schedule slot does; cron calls it, tests and the CLI may too */
  fire(schedule: ScheduleName, at: Date): Promise<SlotResult>;
  /** the schedules running (an empty expression disables one) */
  active(): ScheduleName[];
  close(): Promise<void>;
}

/**
 * The cron schedules (node-cron, in the platform zone): nightly backfill from each checkpoint, the
 * status poll, the gap check. Every slot is claimed in Redis first (`<prefix>:schedule:<name>:<slot>`),
 * so any number of scheduler processes create one set of jobs per slot.
 */
export function createScheduler(input: Omit<SchedulerOptions, keyof typeof DEFAULT_SCHEDULER> & Partial<SchedulerOptions>): Scheduler {
  const o: SchedulerOptions = { ...DEFAULT_SCHEDULER, ...input };
  const tasks: Array<{ name: ScheduleName; task: ScheduledTask }> = [];
  const running = new Set<Promise<unknown>>();

  async function claim(schedule: ScheduleName, slot: number): Promise<boolean> {
    const ok = await o.redis.set(redisKey(o.prefix, 'schedule', schedule, String(slot)), String(process.pid), 'PX', 7 * 86_400_000, 'NX');
    return ok === 'OK';
  }

  async function nightly(slot: number): Promise<number> {
    let jobs = 0;
    for (const d of await o.registry.list()) {
      const from = (await o.checkpoints.get(d.id))?.upTo ?? o.backfillStart;
      jobs += (await o.backfills.enqueue({ deviceId: d.id, from, to: slot, reason: 'nightly' })).length;
    }
    return jobs;
  }

  async function status(slot: number): Promise<number> {
    await o.statusQueue.add('poll', {}, { jobId: `status|${slot}`, removeOnComplete: { age: 86_400, count: 1000 }, removeOnFail: { age: 7 * 86_400 }, attempts: 3, backoff: { type: 'exponential', delay: 5000 } });
    return 1;
  }

  async function gaps(slot: number): Promise<number> {
    let jobs = 0;
    const to = slot - o.gapSettleMs;
    const from = to - o.gapLookbackMs;
    for (const d of await o.registry.list()) {
      try {
        const found = await o.gapFinder.scan(d.id, from, to);
        for (const g of found.gaps) jobs += (await o.backfills.enqueue({ deviceId: d.id, from: g.from, to: g.to, reason: 'gap' })).length;
        if (found.gaps.length) o.logger.info({ deviceId: d.id, gaps: found.gaps.length, cadenceMs: found.cadenceMs }, 'gap check: backfills queued');
      } catch (err) {
        // one device's failed scan must not hide the others' gaps
        o.logger.warn({ deviceId: d.id, err: messageOf(err) }, 'gap check failed for a device; the next slot tries again');
      }
    }
    return jobs;
  }

  const actions: Record<ScheduleName, (slot: number) => Promise<number>> = { nightly, status, gaps };

  async function fire(schedule: ScheduleName, at: Date): Promise<SlotResult> {
    const slot = Math.floor(at.getTime() / 1000) * 1000;
    if (!(await claim(schedule, slot))) return { schedule, slot, ran: false, jobs: 0 };
    const jobs = await actions[schedule](slot);
    o.logger.info({ schedule, slot: new Date(slot).toISOString(), jobs }, 'schedule slot ran');
    return { schedule, slot, ran: true, jobs };
  }

  return {
    fire,
    active: () => tasks.map((t) => t.name),
    start() {
      if (tasks.length) return;
      for (const name of Object.keys(actions) as ScheduleName[]) {
        const expr = o.schedules[name];
        if (!expr) continue; // an empty expression disables the schedule
        const task = cron.schedule(
          expr,
          (ctx) => {
            const p = fire(name, ctx.date).catch((err) => o.logger.error({ schedule: name, err: messageOf(err) }, 'schedule slot failed; the next slot tries again'));
            running.add(p);
            void p.finally(() => running.delete(p));
            return p;
          },
          { timezone: o.timezone, name: `expeed-${name}`, noOverlap: true },
        );
        tasks.push({ name, task });
      }
    },
    async close() {
      for (const t of tasks.splice(0)) await t.task.destroy();
      await Promise.allSettled([...running]);
    },
  };
}
