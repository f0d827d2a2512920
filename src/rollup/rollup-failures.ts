/**
 * The devices whose rollup job keeps failing, one record each in a Redis hash, so that a failing
 * rollup backs off instead of being dispatched again on every tick, and `status` can name it:
 *
 *   <prefix>:rollup:failing   device id -> {count, firstAt, lastAt, nextAt, hours, firstHour, reason}
 *
 * After the n-th failure in a row the device's hours are not dispatched before `nextAt` =
 * lastAt + min(baseMs * 2^(n-1), maxMs) (1 min doubling to 1 h by default); the reason is cut to
 * REASON_CHARS, so a record stays small whatever the error said. A success removes the record.
 * One record per device at most: the hash is bounded by the registry.
 */
import { redisKey, type RedisConnection } from '../base/redis.js';
import { withDefaults } from '../base/options.js';

/** The longest reason kept (and logged) of a failed rollup. */
export const REASON_CHARS = 200;

export interface RollupBackoff {
  /** pause after the first failure, ms (default 1 min) */
  baseMs: number;
  /** longest pause, ms (default 1 h) */
  maxMs: number;
}

export const DEFAULT_ROLLUP_BACKOFF: RollupBackoff = { baseMs: 60_000, maxMs: 3_600_000 };

export interface RollupFailure {
  deviceId: string;
  /** failures in a row */
  count: number;
  firstAt: number;
  lastAt: number;
  /** not dispatched again before this */
  nextAt: number;
  /** dirty hours of the failed job, and the first of them */
  hours: number;
  firstHour: number;
  /** the last error, cut to REASON_CHARS */
  reason: string;
}

/** An error message cut to `max` characters (with an ellipsis and the full length when cut). */
export function shortReason(message: string, max = REASON_CHARS): string {
  const flat = message.replace(/\s+/g, ' ');
  return flat.length <= max ? flat : `${flat.slice(0, max)}… (${flat.length} chars)`;
}

export class RollupFailures {
  readonly key: string;
  private readonly backoff: RollupBackoff;

  constructor(
    private readonly redis: RedisConnection,
    prefix: string,
    backoff: Partial<RollupBackoff> = {},
  ) {
    this.key = redisKey(prefix, 'rollup', 'failing');
    this.backoff = withDefaults(DEFAULT_ROLLUP_BACKOFF, backoff);
  }

  /**
   * Records a failed rollup job of `deviceId` (its hours, the error) at `now`; returns the record.
   * One job per device runs at a time, so the read and the write of a record never race.
   */
  async failed(deviceId: string, hours: readonly number[], message: string, now: number): Promise<RollupFailure> {
    const before = await this.get(deviceId);
    const count = (before?.count ?? 0) + 1;
    const pause = Math.min(this.backoff.baseMs * 2 ** Math.min(count - 1, 40), this.backoff.maxMs);
    const record: RollupFailure = {
      deviceId,
      count,
      firstAt: before?.firstAt ?? now,
      lastAt: now,
      nextAt: now + pause,
      hours: hours.length,
      firstHour: hours.length ? Math.min(...hours) : 0,
      reason: shortReason(message),
    };
    await this.redis.hset(this.key, deviceId, JSON.stringify(record));
    return record;
  }

  /** The device's rollup succeeded: it no longer backs off. */
  async succeeded(deviceId: string): Promise<void> {
    await this.redis.hdel(this.key, deviceId);
  }

  async get(deviceId: string): Promise<RollupFailure | undefined> {
    const raw = await this.redis.hget(this.key, deviceId);
    return raw === null ? undefined : (JSON.parse(raw) as RollupFailure);
  }

  /** Every failing device, the most failures first. */
  async list(): Promise<RollupFailure[]> {
    const all = Object.values(await this.redis.hgetall(this.key)).map((raw) => JSON.parse(raw) as RollupFailure);
    return all.sort((a, b) => b.count - a.count || (a.deviceId < b.deviceId ? -1 : 1));
  }

  /** The devices still backing off at `now` (their hours are not dispatched yet). */
  async backingOff(now: number): Promise<Set<string>> {
    return new Set((await this.list()).filter((f) => f.nextAt > now).map((f) => f.deviceId));
  }
}
