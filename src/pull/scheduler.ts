import cron, { type ScheduledTask } from 'node-cron';
import type { Logger } from '../base/log.js';
import { redisKey } from '../base/redis.js';
import { messageOf } from '../base/failure.js';
import { withDefaults } from '../base/options.js';
import {
  DEFAULT_SCHEDULER,
  type ScheduleName,
  type SchedulerInput,
  type SchedulerOptions,
} from './scheduler-options.js';
import { gapSlot, nightlySlot, statusSlot, verifySlot } from './schedule-slots.js';
import { cronIntervalMs, statusCapacity, type StatusCapacity } from './status-slot.js';

export type { ScheduleName, SchedulerInput, SchedulerOptions } from './scheduler-options.js';

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
  /** whether the rate can poll the whole fleet within one status interval, and if not how many slots a round takes */
  statusCapacity(): Promise<StatusCapacity | undefined>;
  /** the schedules running (an empty expression disables one) */
  active(): ScheduleName[];
  close(): Promise<void>;
}

/**
 * The cron schedules (node-cron, in the platform zone): nightly backfill from each checkpoint, the
 * status poll, the gap check, the verification. Every slot is claimed in Redis first
 * (`<prefix>:schedule:<name>:<slot>`), so any number of scheduler processes create one set of jobs
 * per slot; what a slot then does is in ./schedule-slots.ts.
 */
export class CronScheduler implements Scheduler {
  private readonly o: SchedulerOptions;
  private readonly slots: Record<ScheduleName, (slot: number) => Promise<number>>;
  private readonly tasks: Array<{ name: ScheduleName; task: ScheduledTask }> = [];
  /** slots cron started that have not settled yet: close() waits for them */
  private readonly running = new Set<Promise<unknown>>();

  constructor(input: SchedulerInput) {
    const o: SchedulerOptions = withDefaults(DEFAULT_SCHEDULER, input);
    this.o = o;
    this.slots = {
      nightly: (slot) => nightlySlot(o, slot),
      status: (slot) => statusSlot(o, slot, this.statusIntervalMs()),
      gaps: (slot) => gapSlot(o, slot),
      verify: (slot) => verifySlot(o, slot),
    };
  }

  async fire(schedule: ScheduleName, at: Date): Promise<SlotResult> {
    const slot = Math.floor(at.getTime() / 1000) * 1000;
    if (!(await this.claim(schedule, slot))) return { schedule, slot, ran: false, jobs: 0 };
    const jobs = await this.slots[schedule](slot);
    this.o.logger.info({ schedule, slot: new Date(slot).toISOString(), jobs }, 'schedule slot ran');
    return { schedule, slot, ran: true, jobs };
  }

  async statusCapacity(): Promise<StatusCapacity | undefined> {
    const every = this.statusIntervalMs();
    return every === undefined
      ? undefined
      : statusCapacity((await this.o.registry.list()).length, this.o.statusRatePerSecond, every);
  }

  active(): ScheduleName[] {
    return this.tasks.map((t) => t.name);
  }

  start(): void {
    if (this.tasks.length) return;
    for (const name of Object.keys(this.slots) as ScheduleName[]) {
      const expr = this.o.schedules[name];
      if (!expr) continue; // an empty expression disables the schedule
      const task = cron.schedule(expr, (ctx) => this.fromCron(name, ctx.date), {
        timezone: this.o.timezone,
        name: `expeed-${name}`,
        noOverlap: true,
        logger: cronLogger(this.o.logger, name),
      });
      this.tasks.push({ name, task });
    }
    if (this.o.schedules.status) this.warnIfStatusFallsBehind();
  }

  async close(): Promise<void> {
    for (const t of this.tasks.splice(0)) await t.task.destroy();
    await Promise.allSettled([...this.running]);
  }

  /** Takes the slot for this process; false when another scheduler process already took it. */
  private async claim(schedule: ScheduleName, slot: number): Promise<boolean> {
    const ok = await this.o.redis.set(
      redisKey(this.o.prefix, 'schedule', schedule, String(slot)),
      String(process.pid),
      'PX',
      7 * 86_400_000,
      'NX',
    );
    return ok === 'OK';
  }

  /** A slot cron started: a failure is logged (the next slot tries again), and close() waits for it. */
  private fromCron(name: ScheduleName, at: Date): Promise<unknown> {
    const p = this.fire(name, at).catch((err) =>
      this.o.logger.error({ schedule: name, err: messageOf(err) }, 'schedule slot failed; the next slot tries again'),
    );
    this.running.add(p);
    void p.finally(() => this.running.delete(p));
    return p;
  }

  /** The status interval: as given, or the shortest gap between runs of the status cron expression. */
  private statusIntervalMs(): number | undefined {
    return (
      this.o.statusIntervalMs ??
      (this.o.schedules.status ? cronIntervalMs(this.o.schedules.status, this.o.timezone) : undefined)
    );
  }

  /** One warning at start when the request rate cannot poll the whole fleet within one status interval. */
  private warnIfStatusFallsBehind(): void {
    this.statusCapacity()
      .then((c) => {
        if (c && c.slotsPerRound > 1) {
          this.o.logger.warn(
            { ...c, intervalSeconds: c.intervalMs / 1000 },
            `status poll: ${c.devices} devices cannot be polled within one interval at ${c.ratePerSecond} requests/s (${c.perInterval} calls per ${c.intervalMs / 1000} s); polling round-robin, every device at least every ${c.slotsPerRound} intervals`,
          );
        }
      })
      .catch((err) => this.o.logger.warn({ err: messageOf(err) }, 'status poll capacity could not be checked'));
  }
}

/**
 * node-cron's own messages (a slot still running when the next one is due, a missed slot) as our
 * JSON log lines with the schedule's name, instead of its coloured text on the console.
 */
export function cronLogger(
  logger: Pick<Logger, 'error' | 'info' | 'warn'> & Partial<Pick<Logger, 'debug'>>,
  schedule: string,
): NonNullable<Parameters<typeof cron.schedule>[2]>['logger'] {
  const at = { schedule, source: 'node-cron' };
  const text = (m: string | Error) => (m instanceof Error ? m.message : m);
  return {
    info: (m) => logger.info(at, m),
    warn: (m) => logger.warn(at, m),
    error: (m, err) => logger.error({ ...at, err: messageOf(err ?? m) }, text(m)),
    debug: (m, err) => logger.debug?.(err ? { ...at, err: messageOf(err) } : at, text(m)),
  };
}
