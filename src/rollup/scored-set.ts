/**
 * What the dirty-hour and dirty-day sets share: a Redis sorted set of `<bucket start ms>|<device
 * id>` members scored by when the bucket is due, read in due order, counted, and cleared by
 * compare-and-delete (a member goes only if its score is still the one read before computing).
 */
import type { RedisConnection as Redis } from '../base/redis.js';

/** One dirty bucket (an hour, or a day) of one device, with the score it had when it was read. */
export interface DirtyHour {
  deviceId: string;
  /** epoch ms of the bucket's start */
  hour: number;
  /** the score as Redis returned it (compared as a number) */
  score: string;
}

export interface RollupBacklog {
  /** dirty buckets, settled or not */
  hours: number;
  /** the earliest score: when the longest-waiting bucket became (or becomes) due, epoch ms */
  oldestDue?: number;
}

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

/** `<bucket start ms>|<device id>`: a member of a dirty set */
export function member(deviceId: string, bucket: number): string {
  return `${bucket}|${deviceId}`;
}

export function parseMember(m: string, score: string): DirtyHour {
  const i = m.indexOf('|');
  return { hour: Number(m.slice(0, i)), deviceId: m.slice(i + 1), score };
}

export class ScoredSet {
  constructor(
    protected readonly redis: Redis,
    readonly key: string,
    protected readonly clock: () => number,
  ) {}

  /** How many of these buckets (their starts) of a device are still dirty. */
  protected async countOf(deviceId: string, buckets: readonly number[]): Promise<number> {
    let n = 0;
    for (let i = 0; i < buckets.length; i += 1000) {
      const scores = await this.redis.zmscore(this.key, ...buckets.slice(i, i + 1000).map((b) => member(deviceId, b)));
      n += scores.filter((s) => s !== null).length;
    }
    return n;
  }

  /** Buckets due by `now - settleMs`, longest-waiting first. */
  async settled(settleMs: number, limit: number): Promise<DirtyHour[]> {
    const flat = await this.redis.zrangebyscore(
      this.key,
      '-inf',
      this.clock() - settleMs,
      'WITHSCORES',
      'LIMIT',
      0,
      limit,
    );
    const out: DirtyHour[] = [];
    for (let i = 0; i < flat.length; i += 2) out.push(parseMember(flat[i], flat[i + 1]));
    return out;
  }

  /** Removes the buckets whose score is still the one read; returns how many were removed. */
  async clear(read: readonly DirtyHour[]): Promise<number> {
    if (read.length === 0) return 0;
    const args = read.flatMap((d) => [member(d.deviceId, d.hour), d.score]);
    return (await this.redis.eval(CLEAR, 1, this.key, ...args)) as number;
  }

  /** How many buckets are dirty, and when the longest-waiting one became (or becomes) due. */
  async backlog(): Promise<RollupBacklog> {
    const [n, first] = await Promise.all([this.redis.zcard(this.key), this.redis.zrange(this.key, 0, 0, 'WITHSCORES')]);
    return { hours: n, oldestDue: first.length ? Number(first[1]) : undefined };
  }
}
