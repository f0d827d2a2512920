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

export const HOUR_MS = 3_600_000;

/** One dirty hour of one device, with the score it had when it was read. */
export interface DirtyHour {
  deviceId: string;
  /** epoch ms of the hour's start */
  hour: number;
  /** the score as Redis returned it (compared as a number) */
  score: string;
}

export interface RollupBacklog {
  /** dirty hours, settled or not */
  hours: number;
  /** the earliest score: when the longest-waiting hour became (or becomes) due, epoch ms */
  oldestDue?: number;
}

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

// pairs of member, score read before the computation: removed only when unchanged
const CLEAR = `
local n = 0
for i = 1, #ARGV, 2 do
  local cur = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if cur and tonumber(cur) == tonumber(ARGV[i + 1]) then
    redis.call('ZREM', KEYS[1], ARGV[i])
    n = n + 1
  end
end
return n`;

export const hourOf = (t: number): number => Math.floor(t / HOUR_MS) * HOUR_MS;

/**
 * Compare-and-delete on a dirty set (hours here, days in ./dirty-days.ts): removes each member
 * whose score is still the one read; returns how many were removed.
 */
export async function clearScored(
  redis: Redis,
  key: string,
  members: ReadonlyArray<[member: string, score: string]>,
): Promise<number> {
  if (members.length === 0) return 0;
  return (await redis.eval(CLEAR, 1, key, ...members.flat())) as number;
}

/** `<bucket start ms>|<device id>`: a member of a dirty set */
export function member(deviceId: string, hour: number): string {
  return `${hour}|${deviceId}`;
}

export function parseMember(m: string, score: string): DirtyHour {
  const i = m.indexOf('|');
  return { hour: Number(m.slice(0, i)), deviceId: m.slice(i + 1), score };
}

export class DirtyHours {
  private readonly o: DirtyHoursOptions;
  readonly key: string;
  private readonly manualKey: string;

  constructor(options: Omit<DirtyHoursOptions, keyof typeof DEFAULT_DIRTY_HOURS> & Partial<DirtyHoursOptions>) {
    this.o = withDefaults(DEFAULT_DIRTY_HOURS, options);
    this.key = redisKey(this.o.prefix, 'rollup', 'dirty');
    this.manualKey = redisKey(this.o.prefix, 'rollup', 'manual-requests');
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

  /** How many of these hours of a device are still dirty. */
  async count(deviceId: string, hours: readonly number[]): Promise<number> {
    let n = 0;
    for (let i = 0; i < hours.length; i += 1000) {
      const scores = await this.o.redis.zmscore(
        this.key,
        ...hours.slice(i, i + 1000).map((h) => member(deviceId, hourOf(h))),
      );
      n += scores.filter((s) => s !== null).length;
    }
    return n;
  }

  /** Hours due by `now - settleMs` (ended and untouched that long), longest-waiting first. */
  async settled(settleMs: number, limit: number): Promise<DirtyHour[]> {
    const flat = await this.o.redis.zrangebyscore(
      this.key,
      '-inf',
      this.o.now() - settleMs,
      'WITHSCORES',
      'LIMIT',
      0,
      limit,
    );
    const out: DirtyHour[] = [];
    for (let i = 0; i < flat.length; i += 2) out.push(parseMember(flat[i], flat[i + 1]));
    return out;
  }

  /** Removes the hours whose score is still the one read; returns how many were removed. */
  async clear(hours: readonly DirtyHour[]): Promise<number> {
    return clearScored(
      this.o.redis,
      this.key,
      hours.map((h) => [member(h.deviceId, h.hour), h.score]),
    );
  }

  async backlog(): Promise<RollupBacklog> {
    const [hours, first] = await Promise.all([
      this.o.redis.zcard(this.key),
      this.o.redis.zrange(this.key, 0, 0, 'WITHSCORES'),
    ]);
    return { hours, oldestDue: first.length ? Number(first[1]) : undefined };
  }
}
