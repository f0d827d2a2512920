/**
 * Signed POSTs seen recently, so that a captured signed URL cannot carry a second body. The key is
 * the verified signature (32 hex characters: its length is ours, not the sender's), kept in Redis
 * with SET NX so that every webhook replica refuses the repeat, for as long as the timestamp
 * window would still accept the URL.
 */
import type { Redis } from 'ioredis';
import { redisKey } from '../base/redis.js';
import { ExpeedError } from '../base/retry.js';

/** How long a nonce is remembered when the timestamp window is off (WEBHOOK_TIMESTAMP_WINDOW=0). */
export const DEFAULT_NONCE_TTL_SEC = 86_400;

export interface NonceStore {
  /** true when this signature had not been seen within `ttlSec`; false for a repeat */
  claim(signature: string, ttlSec: number): Promise<boolean>;
  /** forgets a claim, so the platform may send the same signed request again (we answered 503) */
  release(signature: string): Promise<void>;
}

/** A signed request seen before: retrying it cannot help. */
export class ReplayError extends ExpeedError {
  constructor() {
    super('this signed request was already received (a replay): nonce and timestamp are used once', {
      retryable: false,
    });
  }
}

/** Seconds a nonce must be remembered: the window (both sides of now) or the default when it is off. */
export function nonceTtlSec(windowSec: number): number {
  return windowSec > 0 ? windowSec * 2 : DEFAULT_NONCE_TTL_SEC;
}

export class RedisNonceStore implements NonceStore {
  constructor(
    private readonly redis: Pick<Redis, 'set' | 'del'>,
    private readonly prefix: string,
  ) {}

  private key(signature: string): string {
    return redisKey(this.prefix, 'webhook', 'nonce', signature.toLowerCase());
  }

  async claim(signature: string, ttlSec: number): Promise<boolean> {
    return (await this.redis.set(this.key(signature), '1', 'EX', ttlSec, 'NX')) === 'OK';
  }

  async release(signature: string): Promise<void> {
    await this.redis.del(this.key(signature));
  }
}
