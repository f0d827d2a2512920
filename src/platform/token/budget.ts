/**
 * The shared access token and the daily budget of token calls — the scarcest resource of the
 * system (200 calls per platform day). This class decides when a token is fetched, by whom and
 * whether the day's allowance permits it; the state it keeps in Redis, shared by every process,
 * lives in its parts: the cached token (cache.ts), the refresh lock and the last failed refresh
 * (refresh-lock.ts), the day's count (calls.ts) and the cool-down after a rejection (cooldown.ts);
 * its options and their defaults are in budget-options.ts. `expeed-sync token` reads them through
 * usage.ts.
 */
import { redisKey } from '../../base/redis.js';
import { sleep } from '../../base/backoff.js';
import { isRetryable } from '../../base/retry.js';
import type { TokenSource } from '../api.js';
import { CredentialsRejectedError, ENDPOINT, PlatformError } from '../errors.js';
import { CredentialsCooldownError, TokenBudgetExhaustedError, TokenCooldownError } from './errors.js';
import { DailyTokenCalls } from './calls.js';
import { isFresh, isValid, TokenCache, type CachedToken } from './cache.js';
import { TokenCooldown, type Cooldown } from './cooldown.js';
import type { TokenEndpoint } from './endpoint.js';
import { TokenRefreshLock } from './refresh-lock.js';
import { readTokenUsage, type TokenUsage } from './usage.js';
import { platformDay } from '../timestamp.js';
import { formatLocalTime } from '../time-format.js';
import { withDefaults } from '../../base/options.js';
import { DEFAULT_TOKEN_BUDGET_OPTIONS, type TokenBudgetOptions } from './budget-options.js';

export class TokenBudget implements TokenSource {
  private readonly o: TokenBudgetOptions;
  private readonly cache: TokenCache;
  private readonly lock: TokenRefreshLock;
  private readonly calls: DailyTokenCalls;
  private readonly pause: TokenCooldown;
  /** the last token this process saw work: marked once in Redis, not on every call */
  private worked = '';
  /** one refresh per process and kind at a time; the Redis lock does the same across processes */
  private readonly inflight = new Map<boolean, Promise<string>>();
  private readonly closing = new AbortController();

  constructor(options: Partial<TokenBudgetOptions> & Pick<TokenBudgetOptions, 'redis' | 'prefix'>) {
    this.o = withDefaults(DEFAULT_TOKEN_BUDGET_OPTIONS, options);
    if (!Number.isInteger(this.o.dailyLimit) || this.o.dailyLimit < 1)
      throw new RangeError(`token dailyLimit must be a whole number >= 1, got ${this.o.dailyLimit}`);
    if (!Number.isInteger(this.o.reserve) || this.o.reserve < 0 || this.o.reserve >= this.o.dailyLimit) {
      throw new RangeError(
        `token reserve must be a whole number from 0 to dailyLimit - 1 (${this.o.dailyLimit - 1}), got ${this.o.reserve}`,
      );
    }
    const { redis, prefix } = this.o;
    const k = (part: string) => redisKey(prefix, 'token', part);
    this.cache = new TokenCache(redis, k('current'), this.o.scrubber);
    this.lock = new TokenRefreshLock(redis, { lock: k('lock'), failure: k('failure') }, this.o.lockTtlMs);
    this.calls = new DailyTokenCalls(redis, prefix);
    this.pause = new TokenCooldown(
      redis,
      { current: k('current'), cooldown: k('cooldown'), rejections: k('rejections') },
      { cooldownMs: this.o.cooldownMs, maxCooldownMs: this.o.maxCooldownMs },
    );
  }

  async get(options: { useReserve?: boolean } = {}): Promise<string> {
    const cached = await this.cache.read();
    if (cached && this.fresh(cached)) return cached.token;
    const useReserve = options.useReserve === true;
    let running = this.inflight.get(useReserve);
    if (!running) {
      running = this.refresh(useReserve).finally(() => this.inflight.delete(useReserve));
      this.inflight.set(useReserve, running);
    }
    return running;
  }

  async invalidate(token: string): Promise<void> {
    await this.cache.invalidate(token);
  }

  async accepted(token: string): Promise<void> {
    if (token === this.worked) return;
    await this.pause.tokenWorked(token);
    this.worked = token;
  }

  /**
   * Code 1 on a device call. A token that had worked has expired or was revoked: it is dropped and
   * the caller fetches a fresh one. A token that never worked was rejected right after its refresh:
   * every process pauses token calls (TokenCooldownError, thrown here) instead of draining the budget.
   */
  async rejected(token: string, vendorMessage?: string): Promise<void> {
    const now = this.o.now();
    const reason = `code 1${vendorMessage ? ` "${vendorMessage}"` : ''} for a token that had never worked`;
    const r = await this.pause.tokenRejected(token, now, reason, this.o.credentialsId);
    if (r.outcome !== 'cooldown') return;
    const c = r.cooldown;
    this.o.log?.warn(
      { until: new Date(c.until).toISOString(), pauseMs: c.ms },
      'the platform rejected a freshly fetched access token; token calls paused for every process',
    );
    throw this.cooldownError(c);
  }

  async usage(): Promise<TokenUsage> {
    const { dailyLimit: limit, reserve, timezone, credentialsId } = this.o;
    return readTokenUsage(
      {
        calls: this.calls,
        cache: this.cache,
        lock: this.lock,
        pause: this.pause,
        limit,
        reserve,
        timezone,
        credentialsId,
      },
      this.o.now(),
    );
  }

  /** Lifts a cool-down (the operator fixed the credentials or the platform); true when there was one. */
  async clearCooldown(): Promise<boolean> {
    return this.pause.clear();
  }

  /** Stops waits in progress. The Redis connection belongs to the caller and stays open. */
  async close(): Promise<void> {
    this.closing.abort(new Error('token budget closed'));
  }

  private async refresh(useReserve: boolean): Promise<string> {
    if (!this.o.fetchToken) {
      throw new PlatformError('EXPEED_PLATFORM_KEY and EXPEED_SECRET_KEY are not set: no access token can be fetched', {
        endpoint: ENDPOINT.token,
        retryable: false,
      });
    }
    const waitUntil = Date.now() + this.o.waitTimeoutMs;
    for (;;) {
      const now = this.o.now();
      const cooldown = await this.pause.active(now, this.o.credentialsId);
      if (cooldown) throw this.cooldownError(cooldown);
      const cached = await this.cache.read();
      if (cached && this.fresh(cached)) return cached.token;
      const owner = await this.lock.acquire();
      if (owner !== undefined) {
        try {
          return await this.fetchUnderLock(useReserve);
        } finally {
          await this.lock.release(owner);
        }
      }
      // someone else is refreshing: a token that is still valid serves until they are done
      if (cached && this.valid(cached)) return cached.token;
      const token = await this.lock.waitForHolder({
        until: waitUntil,
        timeoutMs: this.o.waitTimeoutMs,
        pollMs: this.o.pollMs,
        signal: this.closing.signal,
        stored: async () => {
          const t = await this.cache.read();
          return t && this.valid(t) ? t.token : undefined;
        },
      });
      if (token !== undefined) return token;
    }
  }

  private async fetchUnderLock(useReserve: boolean): Promise<string> {
    const startedAt = this.o.now();
    const cached = await this.cache.read();
    // another process may have stored a token between our look and our lock
    if (cached && this.fresh(cached)) return cached.token;
    // a pause may have started while we waited for the lock
    const paused = await this.pause.active(startedAt, this.o.credentialsId);
    if (paused) throw this.cooldownError(paused);
    const day = platformDay(startedAt, this.o.timezone);
    const { ok, calls } = await this.calls.consume(day.day, this.o.dailyLimit - (useReserve ? 0 : this.o.reserve));
    if (!ok) {
      if (cached && this.valid(cached)) return cached.token;
      const err = new TokenBudgetExhaustedError(
        day.end,
        formatLocalTime(day.end, this.o.timezone),
        calls,
        this.o.dailyLimit,
        useReserve ? 0 : this.o.reserve,
      );
      this.o.log?.warn(
        { day: day.day, calls, limit: this.o.dailyLimit, resetsAt: new Date(day.end).toISOString() },
        err.message,
      );
      throw err;
    }
    try {
      const grant = await (this.o.fetchToken as TokenEndpoint)(this.closing.signal);
      this.o.scrubber?.add(grant.accessToken);
      const ttlMs = grant.expiresIn * 1000;
      const fresh: CachedToken = {
        token: grant.accessToken,
        expiresAt: startedAt + ttlMs,
        fetchedAt: startedAt,
        ttlMs,
      };
      const writes = this.o.redis.multi();
      this.cache.store(writes, fresh);
      this.lock.clearFailure(writes);
      await writes.exec();
      this.o.log?.info(
        { day: day.day, calls, limit: this.o.dailyLimit, expiresAt: new Date(fresh.expiresAt).toISOString() },
        'fetched a new platform access token',
      );
      this.o.onRefresh?.();
      return fresh.token;
    } catch (err) {
      await this.recordFailure(err, startedAt);
      // the old token has not expired yet: keep using it; the next call tries again
      if (!(err instanceof CredentialsRejectedError) && cached && this.valid(cached)) {
        this.o.log?.warn({ err }, 'token refresh failed; using the current token until it expires');
        return cached.token;
      }
      throw err;
    }
  }

  private async recordFailure(err: unknown, at: number): Promise<void> {
    const writes = this.o.redis.multi();
    const message = this.lock.recordFailure(writes, err, at, this.o.waitTimeoutMs);
    if (err instanceof CredentialsRejectedError) {
      const cooldown = this.pause.credentialsRejected(writes, at, message, this.o.credentialsId);
      err.cooldownUntil = cooldown.until;
      // the one line of this cause: the jobs that then wait for the pause do not log one each
      this.o.log?.warn(
        { reason: message, until: new Date(cooldown.until).toISOString() },
        'the platform refused the credentials; token calls paused for every process, work waits for the cool-down',
      );
    }
    await writes.exec();
  }

  private cooldownError(c: Cooldown): PlatformError {
    const at = formatLocalTime(c.until, this.o.timezone);
    return c.kind === 'token'
      ? new TokenCooldownError(c.until, at, c.reason)
      : new CredentialsCooldownError(c.until, at, c.reason);
  }

  private fresh(t: CachedToken): boolean {
    return isFresh(t, this.o.now(), this.o.refreshBeforeMs);
  }

  private valid(t: CachedToken): boolean {
    return isValid(t, this.o.now());
  }
}
