import cron, { type ScheduledTask } from 'node-cron';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { PLATFORM_DEFAULTS, type SchedulesConfig } from '../base/config.js';
import type { Logger } from '../base/log.js';
import { redisKey } from '../base/redis.js';
import { type BackfillJob, type StatusJob } from '../base/jobs.js';
import type { DeviceRegistry } from '../devices/registry.js';
import type { BackfillQueue } from './backfill-queue.js';
import type { Checkpoints } from './checkpoints.js';
import type { GapFinder } from './gap-finder.js';
import { messageOf } from '../base/failure.js';
import { inLanes } from '../base/lanes.js';
import { GAP_CHUNK_SIZE, gapChunks } from './gap-chunks.js';
import { statusJobs } from './status-job.js';
import { lookbackRequests } from './lookback.js';
import { prunePresence } from './reconnect.js';
import { VERIFY_SPAN_MS, type VerifyLedger } from './verify-run.js';
import {
  cronIntervalMs,
  DEFAULT_STATUS_SLOT,
  planStatusSlot,
  statusCapacity,
  StatusPushLog,
  type StatusCapacity,
} from './status-slot.js';

export type ScheduleName = keyof SchedulesConfig;

export interface SchedulerOptions {
  redis: Pick<Redis, 'set' | 'get' | 'eval' | 'hgetall' | 'hdel'>;
  prefix: string;
  /** IANA zone the cron expressions are read in (EXPEED_TIMEZONE) */
  timezone: string;
  schedules: SchedulesConfig;
  registry: Pick<DeviceRegistry, 'list'>;
  checkpoints: Pick<Checkpoints, 'getMany'>;
  backfills: Pick<BackfillQueue, 'enqueueMany'>;
  statusQueue: Pick<Queue<StatusJob>, 'addBulk' | 'getJobCounts'>;
  gapFinder: Pick<GapFinder, 'scanMany'>;
  /** where the scheduled verification's totals are kept (status shows them) */
  verifyLedger?: Pick<VerifyLedger, 'start'>;
  /** EXPEED_LOOKBACK, ms: the nightly slot also re-reads this much before each checkpoint (0 = off) */
  lookbackMs?: number;
  /** where a device without a checkpoint starts (EXPEED_BACKFILL_START) */
  backfillStart: number;
  logger: Pick<Logger, 'info' | 'warn' | 'error'>;
  /** the gap check looks this far back (ms, default 24 h) */
  gapLookbackMs: number;
  /** and leaves out the newest ms, which pushes and the nightly run may still fill (default 10 min) */
  gapSettleMs: number;
  /** devices per GapFinder.scanMany call in a gap check: a failed call loses only its chunk (default GAP_CHUNK_SIZE, 250) */
  gapChunkSize: number;
  /** chunks whose InfluxDB scans run at once in a gap check (default 2) */
  gapConcurrency: number;
  /** platform requests a second (EXPEED_RATE_LIMIT): how many devices one status slot can poll */
  statusRatePerSecond: number;
  /** devices per status job */
  statusChunkSize: number;
  /** the status interval; default: the shortest gap between runs of the status cron expression */
  statusIntervalMs?: number;
  /** a status slot was skipped because the previous slot's poll still runs (expeed_status_slots_skipped_total) */
  onStatusSkipped?: () => void;
}

export const DEFAULT_SCHEDULER: Pick<
  SchedulerOptions,
  'gapLookbackMs' | 'gapSettleMs' | 'gapChunkSize' | 'gapConcurrency' | 'statusRatePerSecond' | 'statusChunkSize'
> = {
  gapLookbackMs: 86_400_000,
  gapSettleMs: 10 * 60_000,
  gapChunkSize: GAP_CHUNK_SIZE,
  gapConcurrency: 2,
  statusRatePerSecond: PLATFORM_DEFAULTS.requestRate,
  statusChunkSize: DEFAULT_STATUS_SLOT.chunkSize,
};

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
 * status poll, the gap check. Every slot is claimed in Redis first (`<prefix>:schedule:<name>:<slot>`),
 * so any number of scheduler processes create one set of jobs per slot.
 */
export function createScheduler(
  input: Omit<SchedulerOptions, keyof typeof DEFAULT_SCHEDULER> & Partial<SchedulerOptions>,
): Scheduler {
  const o: SchedulerOptions = { ...DEFAULT_SCHEDULER, ...input };
  const tasks: Array<{ name: ScheduleName; task: ScheduledTask }> = [];
  const running = new Set<Promise<unknown>>();

  async function claim(schedule: ScheduleName, slot: number): Promise<boolean> {
    const ok = await o.redis.set(
      redisKey(o.prefix, 'schedule', schedule, String(slot)),
      String(process.pid),
      'PX',
      7 * 86_400_000,
      'NX',
    );
    return ok === 'OK';
  }

  // a fleet's worth in bulk: checkpoints pipelined, every window in addBulk chunks
  async function nightly(slot: number): Promise<number> {
    const ids = (await o.registry.list()).map((d) => d.id);
    const checkpoints = await o.checkpoints.getMany(ids);
    const requests = ids.map((id): BackfillJob => ({
      deviceId: id,
      from: checkpoints.get(id)?.upTo ?? o.backfillStart,
      to: slot,
      reason: 'nightly',
    }));
    requests.push(...lookbackRequests(ids, checkpoints, o.lookbackMs));
    return (await o.backfills.enqueueMany(requests)).length;
  }

  const pushes = new StatusPushLog(o.redis, o.prefix);
  const cursorKey = redisKey(o.prefix, 'status', 'cursor');
  const intervalMs = (): number | undefined =>
    o.statusIntervalMs ?? (o.schedules.status ? cronIntervalMs(o.schedules.status, o.timezone) : undefined);

  async function capacity(): Promise<StatusCapacity | undefined> {
    const every = intervalMs();
    return every === undefined
      ? undefined
      : statusCapacity((await o.registry.list()).length, o.statusRatePerSecond, every);
  }

  async function status(slot: number): Promise<number> {
    // the previous slot's chunks (or their retries, or a poll delayed to the budget reset) still run
    const counts = await o.statusQueue.getJobCounts(
      'waiting',
      'active',
      'delayed',
      'prioritized',
      'paused',
      'waiting-children',
    );
    const pending = Object.values(counts).reduce((a, b) => a + b, 0);
    if (pending > 0) {
      o.onStatusSkipped?.();
      o.logger.warn(
        { slot: new Date(slot).toISOString(), pending },
        'status slot skipped: the previous poll is still running',
      );
      return 0;
    }
    const devices = await o.registry.list();
    const every = intervalMs() ?? 5 * 60_000;
    const cap = statusCapacity(devices.length, o.statusRatePerSecond, every);
    const pushedAt = await pushes.all();
    const registered = new Set(devices.map((d) => d.id));
    await pushes.prune(registered, pushedAt.keys());
    await prunePresence(o.redis, o.prefix, registered);
    const plan = planStatusSlot({
      deviceIds: devices.map((d) => d.id),
      pushedAt,
      slot,
      intervalMs: every,
      perInterval: cap.perInterval,
      chunkSize: o.statusChunkSize,
      cursor: (await o.redis.get(cursorKey)) ?? undefined,
    });
    if (plan.cursor !== undefined) await o.redis.set(cursorKey, plan.cursor);
    await o.statusQueue.addBulk(statusJobs(slot, plan.chunks));
    if (plan.pushed || plan.deferred)
      o.logger.info(
        { chunks: plan.chunks.length, pushed: plan.pushed, deferred: plan.deferred },
        'status slot: devices left out (fresh push, or round-robin)',
      );
    return plan.chunks.length;
  }

  async function gaps(slot: number): Promise<number> {
    const to = slot - o.gapSettleMs;
    const from = to - o.gapLookbackMs;
    const devices = await o.registry.list();
    const requests: BackfillJob[] = [];
    const chunks = gapChunks(
      devices.map((d) => d.id),
      o.gapChunkSize,
    );
    // a few chunks scanned at once (InfluxDB answers each chunk in a few GROUP BY "device_id" queries); all gaps queued together
    await inLanes(chunks, o.gapConcurrency, async (chunk) => {
      try {
        for (const found of await o.gapFinder.scanMany(chunk, from, to)) {
          for (const g of found.gaps)
            requests.push({ deviceId: found.deviceId, from: g.from, to: g.to, reason: 'gap' });
          if (found.gaps.length)
            o.logger.info(
              { deviceId: found.deviceId, gaps: found.gaps.length, cadenceMs: found.cadenceMs },
              'gap check: backfills queued',
            );
        }
      } catch (err) {
        // one chunk's failed scan must not hide the other chunks' gaps
        o.logger.warn(
          { devices: chunk.length, first: chunk[0], last: chunk[chunk.length - 1], err: messageOf(err) },
          'gap check failed for a chunk of devices; the next slot tries again',
        );
      }
    });
    return (await o.backfills.enqueueMany(requests)).length;
  }

  // each device's previous 7 days, verified and repaired by the backfill workers at low priority
  async function verify(slot: number): Promise<number> {
    const ids = (await o.registry.list()).map((d) => d.id);
    await o.verifyLedger?.start({ at: slot, devices: ids.length, from: slot - VERIFY_SPAN_MS, to: slot });
    return (
      await o.backfills.enqueueMany(
        ids.map((id): BackfillJob => ({ deviceId: id, from: slot - VERIFY_SPAN_MS, to: slot, reason: 'verify' })),
      )
    ).length;
  }

  const actions: Record<ScheduleName, (slot: number) => Promise<number>> = { nightly, status, gaps, verify };

  async function fire(schedule: ScheduleName, at: Date): Promise<SlotResult> {
    const slot = Math.floor(at.getTime() / 1000) * 1000;
    if (!(await claim(schedule, slot))) return { schedule, slot, ran: false, jobs: 0 };
    const jobs = await actions[schedule](slot);
    o.logger.info({ schedule, slot: new Date(slot).toISOString(), jobs }, 'schedule slot ran');
    return { schedule, slot, ran: true, jobs };
  }

  return {
    fire,
    statusCapacity: capacity,
    active: () => tasks.map((t) => t.name),
    start() {
      if (tasks.length) return;
      for (const name of Object.keys(actions) as ScheduleName[]) {
        const expr = o.schedules[name];
        if (!expr) continue; // an empty expression disables the schedule
        const task = cron.schedule(
          expr,
          (ctx) => {
            const p = fire(name, ctx.date).catch((err) =>
              o.logger.error(
                { schedule: name, err: messageOf(err) },
                'schedule slot failed; the next slot tries again',
              ),
            );
            running.add(p);
            void p.finally(() => running.delete(p));
            return p;
          },
          { timezone: o.timezone, name: `expeed-${name}`, noOverlap: true, logger: cronLogger(o.logger, name) },
        );
        tasks.push({ name, task });
      }
      if (o.schedules.status) {
        capacity()
          .then((c) => {
            if (c && c.slotsPerRound > 1) {
              o.logger.warn(
                { ...c, intervalSeconds: c.intervalMs / 1000 },
                `status poll: ${c.devices} devices cannot be polled within one interval at ${c.ratePerSecond} requests/s (${c.perInterval} calls per ${c.intervalMs / 1000} s); polling round-robin, every device at least every ${c.slotsPerRound} intervals`,
              );
            }
          })
          .catch((err) => o.logger.warn({ err: messageOf(err) }, 'status poll capacity could not be checked'));
      }
    },
    async close() {
      for (const t of tasks.splice(0)) await t.task.destroy();
      await Promise.allSettled([...running]);
    },
  };
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
