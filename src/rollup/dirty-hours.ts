/**
 * The hours whose rollup is out of date, per device, in one Redis sorted set: member
 * `<hour start ms>|<device id>`, score = when the hour may be rolled up (the later of its end and
 * its last touch). Every touch raises the score strictly and every manual request lowers it to a
 * value that hour never had before, so "was it touched since I read it?" is one compare: an hour is removed only if its score is still the one read before computing
 * (compare-and-delete in Lua). A crash anywhere leaves the hour dirty; it is computed again.
 */
import type { RedisConnection as Redis } from '../base/redis.js';
import { redisKey } from '../base/redis.js';
import { withDefaults } from '../base/options.js';
import { member, ScoredSet } from './scored-set.js';

export { member, parseMember, type DirtyHour, type RollupBacklog } from './scored-set.js';

export const HOUR_MS = 3_600_000;

export interface DirtyHoursOptions {
  redis: Redis;
  prefix: string;
  /** the touch clock (default Date.now); tests inject one */
  now: () => number;
  /** EXPEED_ROLLUP_SETTLE, ms: a manual request scores an hour this far before its end, so it is due at once */
  settleMs: number;
}

export const DEFAULT_DIRTY_HOURS: Pick<DirtyHoursOptions, 'now' | 'settleMs'> = { now: Date.now, settleMs: 0 };

// KEYS[2] = a counter of manual requests. ARGV[1] = now, ARGV[2] = settle ms, ARGV[3] = '1' for a
// manual request; then pairs of member, hour end.
// A touch: max(now, hour end), and above the old score, so a touch during a computation always
// changes it. A manual request: hour end - settle - n (n the counter, new per call), so the hour is
// due now whatever touched it; n makes the value one that member never had (touch scores are all
// at or after the hour's end), so a computation that read an older score never clears it.
const MARK = `
local now = tonumber(ARGV[1])
local settle = tonumber(ARGV[2])
local seq = 0
if ARGV[3] == '1' then seq = redis.call('INCR', KEYS[2]) end
for i = 4, #ARGV, 2 do
  local s
  if seq > 0 then
    s = tonumber(ARGV[i + 1]) - settle - seq
  else
    s = math.max(now, tonumber(ARGV[i + 1]))
    local old = redis.call('ZSCORE', KEYS[1], ARGV[i])
    if old and tonumber(old) >= s then s = tonumber(old) + 1 end
  end
  redis.call('ZADD', KEYS[1], string.format('%.0f', s), ARGV[i])
end
return (#ARGV - 3) / 2`;

export const hourOf = (t: number): number => Math.floor(t / HOUR_MS) * HOUR_MS;

export class DirtyHours extends ScoredSet {
  private readonly o: DirtyHoursOptions;
  private readonly manualKey: string;

  constructor(options: Omit<DirtyHoursOptions, keyof typeof DEFAULT_DIRTY_HOURS> & Partial<DirtyHoursOptions>) {
    const o = withDefaults(DEFAULT_DIRTY_HOURS, options);
    super(o.redis, redisKey(o.prefix, 'rollup', 'dirty'), o.now);
    this.o = o;
    this.manualKey = redisKey(o.prefix, 'rollup', 'manual-requests');
  }

  /**
   * Marks hours (any ms inside them) of devices as touched now. `manual`: an operator asked for
   * them, so they are due at once (an hour that has not ended yet: once it ends), even if a write
   * touched them a moment ago.
   */
  async mark(touched: ReadonlyMap<string, Iterable<number>>, options: { manual?: boolean } = {}): Promise<number> {
    const args: string[] = [];
    for (const [deviceId, hours] of touched) {
      for (const h of new Set([...hours].map(hourOf))) args.push(member(deviceId, h), String(h + HOUR_MS));
    }
    if (args.length === 0) return 0;
    let marked = 0;
    // bounded scripts: a backfill of a year touches thousands of hours at once
    for (let i = 0; i < args.length; i += 2000) {
      const head = [String(this.o.now()), String(this.o.settleMs), options.manual ? '1' : '0'];
      marked += (await this.o.redis.eval(
        MARK,
        2,
        this.key,
        this.manualKey,
        ...head,
        ...args.slice(i, i + 2000),
      )) as number;
    }
    return marked;
  }

  /** How many of these hours (any ms inside them) of a device are still dirty. */
  count(deviceId: string, hours: readonly number[]): Promise<number> {
    return this.countOf(deviceId, hours.map(hourOf));
  }
}
