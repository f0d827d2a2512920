import type { Redis } from 'ioredis';
import type { Logger } from '../base/log.js';
import { redisKey } from '../base/redis.js';
import type { DeviceRegistry } from '../devices/registry.js';
import type { BackfillQueue } from './backfill-queue.js';
import type { Heartbeat } from './heartbeat.js';

export interface CatchUpOptions {
  redis: Pick<Redis, 'set' | 'del'>;
  prefix: string;
  heartbeat: Pick<Heartbeat, 'last' | 'beat' | 'intervalMs'>;
  registry: Pick<DeviceRegistry, 'list'>;
  backfills: Pick<BackfillQueue, 'enqueueMany'>;
  /** down longer than this (ms) = catch up now instead of waiting for the night */
  thresholdMs: number;
  logger?: Pick<Logger, 'info' | 'warn'>;
  now?: () => number;
}

export interface CatchUpResult {
  /** how long the service was down, ms (undefined: first start, no heartbeat yet) */
  downMs?: number;
  /** the missed window that was queued, when one was */
  window?: { from: number; to: number };
  devices: number;
  jobs: number;
}

/**
 * Run once when a process starts: after an outage longer than the threshold, queue backfills of
 * the missed window for every device at once. Several processes starting together queue it once
 * (a Redis lock on the heartbeat they all saw). Beats the heartbeat once the missed window is queued.
 */
export async function catchUpOnStart(options: CatchUpOptions): Promise<CatchUpResult> {
  const now = (options.now ?? Date.now)();
  const last = await options.heartbeat.last();
  const result: CatchUpResult = {
    downMs: last === undefined ? undefined : Math.max(0, now - last),
    devices: 0,
    jobs: 0,
  };
  if (last === undefined || now - last <= options.thresholdMs) {
    await options.heartbeat.beat(now);
    return result;
  }
  const lockKey = redisKey(options.prefix, 'catch-up', String(last));
  if ((await options.redis.set(lockKey, String(now), 'PX', 86_400_000, 'NX')) !== 'OK') return result;
  // a beat is at most one interval old when the process stops: data of that interval may be missing too
  const window = { from: last - options.heartbeat.intervalMs, to: now };
  try {
    const devices = await options.registry.list();
    result.jobs = (
      await options.backfills.enqueueMany(
        devices.map((d) => ({ deviceId: d.id, from: window.from, to: window.to, reason: 'catch-up' as const })),
      )
    ).length;
    result.window = window;
    result.devices = devices.length;
  } catch (err) {
    // not done: the heartbeat stays old and the lock goes, so that the next start catches up again
    await options.redis.del(lockKey).catch(() => undefined);
    throw err;
  }
  // only now: a failed catch-up must not look like a short outage to the next start
  await options.heartbeat.beat(now);
  options.logger?.info(
    {
      downMs: result.downMs,
      from: new Date(window.from).toISOString(),
      to: new Date(window.to).toISOString(),
      devices: result.devices,
      jobs: result.jobs,
    },
    'catch-up after downtime: missed window queued',
  );
  return result;
}
