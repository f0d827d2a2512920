/**
 * The daily count of token calls, shared by every process:
 *
 *   <prefix>:token:calls:<day>   token calls made on that platform day (counted before each call)
 *
 * The count is checked and incremented in one Lua script, so the limit holds however many
 * processes race.
 */
import type { RedisConnection } from '../../base/redis.js';
import { redisKey } from '../../base/redis.js';

/** Counts one call if the day's allowance is not spent: {1, count} or {0, count}. */
const CONSUME = `
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) then return {0, n} end
n = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, n}`;

/** A day's count outlives the day, for `expeed-sync token` around midnight. */
const DAY_KEY_TTL_MS = 3 * 86_400_000;

export class DailyTokenCalls {
  constructor(
    private readonly redis: RedisConnection,
    private readonly prefix: string,
  ) {}

  /** Counts one call unless `allowed` calls were already made that day; the count either way. */
  async consume(day: string, allowed: number): Promise<{ ok: boolean; calls: number }> {
    const [ok, calls] = (await this.redis.eval(CONSUME, 1, this.key(day), allowed, DAY_KEY_TTL_MS)) as [number, number];
    return { ok: ok === 1, calls };
  }

  async count(day: string): Promise<number> {
    return Number((await this.redis.get(this.key(day))) ?? 0);
  }

  private key(day: string): string {
    return redisKey(this.prefix, 'token', 'calls', day);
  }
}
