/**
 * One process refreshes the token at a time; the others wait for its result:
 *
 *   <prefix>:token:lock      the refresh lock (owner id, expires after ttlMs should its holder die)
 *   <prefix>:token:failure   the holder's last failed refresh, for the processes waiting on it
 */
import { randomUUID } from 'node:crypto';
import type { RedisConnection } from '../../base/redis.js';
import { sleep } from '../../base/backoff.js';
import { isRetryable } from '../../base/retry.js';
import { ENDPOINT, PlatformError } from '../errors.js';
import { TokenWaitTimeoutError } from './errors.js';

const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

export interface RefreshWait {
  /** Date.now() after which the wait fails */
  until: number;
  /** how long the whole wait may take (named in the timeout error) */
  timeoutMs: number;
  pollMs: number;
  signal: AbortSignal;
  /** the token the holder stored, once there is one that can be used */
  stored: () => Promise<string | undefined>;
}

export class TokenRefreshLock {
  constructor(
    private readonly redis: RedisConnection,
    private readonly keys: { lock: string; failure: string },
    private readonly ttlMs: number,
  ) {}

  /** The owner id when this process got the lock, undefined when another holds it. */
  async acquire(): Promise<string | undefined> {
    const owner = randomUUID();
    return (await this.redis.set(this.keys.lock, owner, 'PX', this.ttlMs, 'NX')) === 'OK' ? owner : undefined;
  }

  async release(owner: string): Promise<void> {
    await this.redis.eval(RELEASE, 1, this.keys.lock, owner);
  }

  /** A process is fetching a token right now. */
  async held(): Promise<boolean> {
    return (await this.redis.exists(this.keys.lock)) === 1;
  }

  /** Adds the record of a failed refresh to a transaction; it lasts as long as a wait may. */
  recordFailure(writes: ReturnType<RedisConnection['multi']>, err: unknown, at: number, keepMs: number): string {
    const message = err instanceof Error ? err.message : String(err);
    const retryable = isRetryable(err);
    writes.set(this.keys.failure, JSON.stringify({ id: randomUUID(), at, message, retryable }), 'PX', keepMs);
    return message;
  }

  /** Adds the end of a failure record to a transaction (a refresh succeeded). */
  clearFailure(writes: ReturnType<RedisConnection['multi']>): void {
    writes.del(this.keys.failure);
  }

  /** Waits for the holder's result: the token, undefined (lock free: try ourselves), or its error. */
  async waitForHolder(w: RefreshWait): Promise<string | undefined> {
    const failureBefore = await this.redis.get(this.keys.failure);
    for (;;) {
      if (Date.now() >= w.until) throw new TokenWaitTimeoutError(w.timeoutMs);
      await sleep(w.pollMs, w.signal);
      const token = await w.stored();
      if (token !== undefined) return token;
      const failure = await this.redis.get(this.keys.failure);
      if (failure !== null && failure !== failureBefore) {
        // (a spent budget is not recorded here: each caller checks it against its own allowance)
        const f = JSON.parse(failure) as { message: string; retryable: boolean };
        throw new PlatformError(`another process failed to fetch the access token: ${f.message}`, {
          endpoint: ENDPOINT.token,
          retryable: f.retryable,
        });
      }
      if (!(await this.held())) return undefined;
    }
  }
}
