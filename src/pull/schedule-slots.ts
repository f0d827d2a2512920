/**
 * What each kind of schedule slot does, one function per kind: the nightly backfill (with the
 * lookback), the status poll, the gap check and the verification. Each takes the narrow part of
 * the scheduler's options it reads and the slot's time, queues its jobs and returns how many;
 * claiming the slot and the cron wiring are the scheduler's (./scheduler.ts).
 */
import type { BackfillJob } from '../base/jobs.js';
import { redisKey } from '../base/redis.js';
import { messageOf } from '../base/failure.js';
import { inLanes } from '../base/lanes.js';
import { gapChunks } from './gap-chunks.js';
import { lookbackRequests } from './lookback.js';
import { prunePresence } from './reconnect.js';
import { statusJobs } from './status-job.js';
import { planStatusSlot, statusCapacity, StatusPushLog } from './status-slot.js';
import { VERIFY_SPAN_MS } from './verify-run.js';
import type { SchedulerOptions } from './scheduler-options.js';

/** The status interval when neither an interval nor a status cron expression gives one. */
const FALLBACK_STATUS_INTERVAL_MS = 5 * 60_000;

/**
 * A fleet's worth in bulk: checkpoints pipelined, every window in addBulk chunks. Each device is
 * read from its checkpoint (or the backfill start) to the slot, plus the lookback before it.
 */
export async function nightlySlot(
  o: Pick<SchedulerOptions, 'registry' | 'checkpoints' | 'backfills' | 'backfillStart' | 'lookbackMs'>,
  slot: number,
): Promise<number> {
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

export type StatusSlotOptions = Pick<
  SchedulerOptions,
  | 'redis'
  | 'prefix'
  | 'registry'
  | 'statusQueue'
  | 'statusRatePerSecond'
  | 'statusChunkSize'
  | 'logger'
  | 'onStatusSkipped'
>;

/**
 * The status poll: skipped while the previous slot's jobs still run; otherwise the devices whose
 * status no push brought within the interval, round-robin when the rate cannot reach them all.
 * `intervalMs`: the status interval (undefined: none is known, 5 min is assumed).
 */
export async function statusSlot(o: StatusSlotOptions, slot: number, intervalMs: number | undefined): Promise<number> {
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
  const pushes = new StatusPushLog(o.redis, o.prefix);
  const cursorKey = redisKey(o.prefix, 'status', 'cursor');
  const devices = await o.registry.list();
  const every = intervalMs ?? FALLBACK_STATUS_INTERVAL_MS;
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

export type GapSlotOptions = Pick<
  SchedulerOptions,
  | 'registry'
  | 'gapFinder'
  | 'backfills'
  | 'logger'
  | 'gapLookbackMs'
  | 'gapSettleMs'
  | 'gapChunkSize'
  | 'gapConcurrency'
>;

/**
 * The gap check over [slot - settle - lookback, slot - settle): a few chunks of devices scanned at
 * once (InfluxDB answers each chunk in a few GROUP BY "device_id" queries); all gaps queued together.
 */
export async function gapSlot(o: GapSlotOptions, slot: number): Promise<number> {
  const to = slot - o.gapSettleMs;
  const from = to - o.gapLookbackMs;
  const devices = await o.registry.list();
  const requests: BackfillJob[] = [];
  const chunks = gapChunks(
    devices.map((d) => d.id),
    o.gapChunkSize,
  );
  await inLanes(chunks, o.gapConcurrency, async (chunk) => {
    try {
      for (const found of await o.gapFinder.scanMany(chunk, from, to)) {
        for (const g of found.gaps) requests.push({ deviceId: found.deviceId, from: g.from, to: g.to, reason: 'gap' });
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

/** Each device's previous 7 days, verified and repaired by the backfill workers at low priority; the ledger keeps the totals. */
export async function verifySlot(
  o: Pick<SchedulerOptions, 'registry' | 'backfills' | 'verifyLedger'>,
  slot: number,
): Promise<number> {
  const ids = (await o.registry.list()).map((d) => d.id);
  await o.verifyLedger?.start({ at: slot, devices: ids.length, from: slot - VERIFY_SPAN_MS, to: slot });
  return (
    await o.backfills.enqueueMany(
      ids.map((id): BackfillJob => ({ deviceId: id, from: slot - VERIFY_SPAN_MS, to: slot, reason: 'verify' })),
    )
  ).length;
}
