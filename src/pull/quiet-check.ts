import type { Redis } from 'ioredis';
import type { Logger } from '../base/log.js';
import { redisKey } from '../base/redis.js';
import { type BackfillJob } from '../base/jobs.js';
import type { CallOptions, PlatformClient } from '../platform/api.js';
import type { DeviceRegistry } from '../devices/registry.js';
import type { BackfillProgress } from './backfill-runner.js';
import type { Checkpoints } from './checkpoints.js';
import { messageOf } from '../base/failure.js';
import { windowKey } from './windows.js';
import { withDefaults } from '../base/options.js';

/** What the platform said a device's newest row is, and when we asked (both epoch ms, our clock for `askedAt`). */
export interface PlatformNewest {
  /** newest row time from `currentDatapoints`; undefined when the device has never reported */
  newestAt?: number;
  /** taken before the call was sent: the answer covers every row the platform held at this instant */
  askedAt: number;
}

/**
 * The last `currentDatapoints` answer per device, in `<prefix>:platform-newest` (device id -> JSON),
 * shared by every process: workers reuse it within a night, `expeed-sync status` shows it.
 */
export class PlatformNewestStore {
  private readonly key: string;

  constructor(
    private readonly redis: Pick<Redis, 'hget' | 'hset' | 'hgetall'>,
    prefix: string,
  ) {
    this.key = redisKey(prefix, 'platform-newest');
  }

  async get(deviceId: string): Promise<PlatformNewest | undefined> {
    return parse(await this.redis.hget(this.key, deviceId));
  }

  async all(): Promise<Map<string, PlatformNewest>> {
    const out = new Map<string, PlatformNewest>();
    for (const [id, raw] of Object.entries(await this.redis.hgetall(this.key))) {
      const v = parse(raw);
      if (v) out.set(id, v);
    }
    return out;
  }

  async set(deviceId: string, value: PlatformNewest): Promise<void> {
    await this.redis.hset(this.key, deviceId, JSON.stringify(value));
  }
}

function parse(raw: string | null | undefined): PlatformNewest | undefined {
  if (!raw) return undefined;
  try {
    const v = JSON.parse(raw) as PlatformNewest;
    return typeof v.askedAt === 'number' ? v : undefined;
  } catch {
    return undefined;
  }
}

export interface QuietCheckOptions {
  platform: Pick<PlatformClient, 'currentDatapoints'>;
  store: Pick<PlatformNewestStore, 'get' | 'set'>;
  registry: Pick<DeviceRegistry, 'get' | 'clearFailure'>;
  checkpoints: Pick<Checkpoints, 'complete' | 'clearPosition'>;
  logger: Pick<Logger, 'debug' | 'warn'>;
  /** our clock (default Date.now): a window may only be skipped once it has ended on it */
  now: () => number;
  /** a walk was skipped (the service counts it in expeed_walks_skipped_total) */
  onSkip?: (job: BackfillJob) => void;
}

export const DEFAULT_QUIET_CHECK: Pick<QuietCheckOptions, 'now'> = { now: Date.now };

/** The reasons whose windows may be skipped: operator backfills and gap fills always walk. */
const QUIET_REASONS: ReadonlySet<BackfillJob['reason']> = new Set(['nightly', 'catch-up']);

/**
 * Before a nightly or catch-up window is walked: one `currentDatapoints` call (no paging) tells the
 * device's newest row. The window [from, to) is complete without a walk when
 *   newest < from   (nothing the platform holds can be in the window; a row AT `from` would be in it)
 *   and the answer was asked at or after `to` (a row stamped inside the window cannot appear later
 *   than a walk would have missed it too; before `to` the device may still report into it).
 * Anything else walks: no answer, an unreadable answer, a failed call ("never skip on doubt").
 * One answer serves every window of the device that ended before it was asked, so a device costs
 * one call a night however many windows it has; concurrent jobs of one device share the call.
 */
export class QuietCheck {
  private readonly o: QuietCheckOptions;
  private readonly inFlight = new Map<string, Promise<PlatformNewest | undefined>>();

  constructor(options: Omit<QuietCheckOptions, keyof typeof DEFAULT_QUIET_CHECK> & Partial<QuietCheckOptions>) {
    this.o = withDefaults(DEFAULT_QUIET_CHECK, options);
  }

  /** true: the window was marked complete without a walk. Never throws: on doubt the caller walks. */
  async skip(job: BackfillJob, call: CallOptions = {}): Promise<boolean> {
    if (!QUIET_REASONS.has(job.reason)) return false;
    try {
      const device = await this.o.registry.get(job.deviceId);
      if (!device) return false;
      let seen = await this.o.store.get(job.deviceId);
      if (!seen || seen.askedAt < job.to) seen = await this.ask(device, call);
      if (!seen || seen.askedAt < job.to || seen.newestAt === undefined || !(seen.newestAt < job.from)) return false;
      await this.o.checkpoints.complete(job.deviceId, job.from, job.to);
      await this.o.checkpoints.clearPosition(windowKey(job.deviceId, job));
      if (device.failure) await this.o.registry.clearFailure(job.deviceId);
      this.o.onSkip?.(job);
      this.o.logger.debug(
        { deviceId: job.deviceId, from: job.from, to: job.to, newestAt: seen.newestAt },
        'quiet device: window complete without a walk',
      );
      return true;
    } catch (err) {
      this.o.logger.warn({ deviceId: job.deviceId, err: messageOf(err) }, 'quiet check failed; the window is walked');
      return false;
    }
  }

  private ask(device: { id: string; key: string }, call: CallOptions): Promise<PlatformNewest | undefined> {
    const running = this.inFlight.get(device.id);
    if (running) return running;
    const p = (async () => {
      const askedAt = this.o.now();
      const answer = await this.o.platform.currentDatapoints({ id: device.id, key: device.key }, undefined, call);
      // a row we cannot read might be the newest one: no conclusion from this answer
      if (answer.unreadable.length) return undefined;
      const seen: PlatformNewest = { askedAt, ...(answer.row ? { newestAt: answer.row.time } : {}) };
      await this.o.store.set(device.id, seen);
      return seen;
    })();
    this.inFlight.set(device.id, p);
    return p.finally(() => this.inFlight.delete(device.id));
  }
}

/** What a skipped window's job returns: the whole window covered, nothing fetched. */
export function skippedProgress(job: BackfillJob): BackfillProgress {
  return {
    deviceId: job.deviceId,
    from: job.from,
    to: job.to,
    position: job.to,
    fraction: 1,
    pages: 0,
    points: 0,
    unreadable: 0,
    resumedFrom: job.from,
  };
}
