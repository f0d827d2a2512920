/**
 * The days whose daily rollup (`device_data_1d`) is out of date, per device: a Redis sorted set
 * `<prefix>:rollup:dirty-days`, member `<day start ms>|<device id>` (the day is the platform-local
 * day of EXPEED_TIMEZONE), score = its last touch. A day is touched whenever one of its hours was
 * rolled up, before that hour leaves the hour set, so a crash between the two leaves both dirty
 * (computed again, harmless) and never neither. In a zone offset by a half or quarter hour an hour
 * straddling midnight touches both its days. Every touch raises the score strictly, so a day
 * computation clears the day only if nothing touched it meanwhile (compare-and-delete, shared with
 * the hour set). A day is due as soon as it is touched: its hours have already settled.
 */
import type { RedisConnection as Redis } from '../base/redis.js';
import { redisKey } from '../base/redis.js';
import { platformDay } from '../platform/timestamp.js';
import { hourOf } from './dirty-hours.js';
import { member, ScoredSet } from './scored-set.js';
import { withDefaults } from '../base/options.js';

export interface DirtyDaysOptions {
  redis: Redis;
  prefix: string;
  /** EXPEED_TIMEZONE: whose midnight starts a day */
  timezone: string;
  /** the touch clock (default Date.now); tests inject one */
  now: () => number;
}

// ARGV[1] = now; then members. A touch scores max(now, old + 1): strictly above the score a
// running day computation read, so that computation cannot clear it.
const TOUCH_DAYS = `
local now = tonumber(ARGV[1])
for i = 2, #ARGV do
  local s = now
  local old = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if old and tonumber(old) >= s then s = tonumber(old) + 1 end
  redis.call('ZADD', KEYS[1], string.format('%.0f', s), ARGV[i])
end
return #ARGV - 1`;

export class DirtyDays extends ScoredSet {
  private readonly o: DirtyDaysOptions;

  constructor(options: Omit<DirtyDaysOptions, 'now'> & Partial<DirtyDaysOptions>) {
    const o = withDefaults({ now: Date.now }, options);
    super(o.redis, redisKey(o.prefix, 'rollup', 'dirty-days'), o.now);
    this.o = o;
  }

  /** The start (epoch ms) of the platform-local day that holds instant `t`. */
  dayOf(t: number): number {
    return platformDay(t, this.o.timezone).start;
  }

  /** The distinct day starts of these hours (any ms inside them), sorted. */
  daysOf(hours: Iterable<number>): number[] {
    const days = new Set<number>();
    // in a zone offset by a half or quarter hour, a UTC hour straddles midnight: both days change
    for (const h of new Set([...hours].map(hourOf))) days.add(this.dayOf(h)).add(this.dayOf(h + 3_599_999));
    return [...days].sort((a, b) => a - b);
  }

  /** Touches the days of these hours of a device (after their hourly rollups were written). */
  async touchHours(deviceId: string, hours: Iterable<number>): Promise<number> {
    return this.touch(deviceId, this.daysOf(hours));
  }

  /** Touches days (their start ms) of a device: they are due at once. */
  async touch(deviceId: string, days: readonly number[]): Promise<number> {
    let n = 0;
    for (let i = 0; i < days.length; i += 2000) {
      const members = days.slice(i, i + 2000).map((d) => member(deviceId, d));
      if (members.length)
        n += (await this.o.redis.eval(TOUCH_DAYS, 1, this.key, String(this.o.now()), ...members)) as number;
    }
    return n;
  }

  /** How many of these days (their start ms) of a device are still dirty. */
  count(deviceId: string, days: readonly number[]): Promise<number> {
    return this.countOf(deviceId, days);
  }
}
