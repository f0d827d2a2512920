/**
 * The access token every process shares, cached in Redis:
 *
 *   <prefix>:token:current   hash {token, expiresAt, fetchedAt, ttlMs} (and `worked`, see token-cooldown.ts)
 *
 * It expires with the token. A token read here that another process fetched joins this process's
 * secret scrubber, so it never reaches a log.
 */
import type { RedisConnection } from '../../base/redis.js';
import type { SecretScrubber } from '../../base/secrets.js';

export interface CachedToken {
  token: string;
  expiresAt: number;
  fetchedAt: number;
  ttlMs: number;
}

/** Drops the cached token only if it is still the one that failed. */
const INVALIDATE = `
if redis.call('HGET', KEYS[1], 'token') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

export class TokenCache {
  constructor(
    private readonly redis: RedisConnection,
    /** <prefix>:token:current */
    readonly key: string,
    private readonly scrubber?: SecretScrubber,
  ) {}

  async read(): Promise<CachedToken | undefined> {
    const h = await this.redis.hgetall(this.key);
    if (!h.token) return undefined;
    this.scrubber?.add(h.token);
    return { token: h.token, expiresAt: Number(h.expiresAt), fetchedAt: Number(h.fetchedAt), ttlMs: Number(h.ttlMs) };
  }

  /** Adds the replacement of the cached token to a transaction. */
  store(writes: ReturnType<RedisConnection['multi']>, fresh: CachedToken): void {
    writes
      // a new token has not worked yet: no field of the old one may carry over
      .del(this.key)
      .hset(this.key, { ...fresh })
      .pexpire(this.key, fresh.ttlMs);
  }

  async invalidate(token: string): Promise<void> {
    await this.redis.eval(INVALIDATE, 1, this.key, token);
  }
}

/** Good for a while yet: not inside the refresh window (at most a quarter of the token's lifetime). */
export function isFresh(t: CachedToken, now: number, refreshBeforeMs: number): boolean {
  return now < t.expiresAt - Math.min(refreshBeforeMs, t.ttlMs / 4);
}

/** Not expired: still usable while another process fetches the next one. */
export function isValid(t: CachedToken, now: number): boolean {
  return now < t.expiresAt;
}
