/**
 * The shared access token and the daily budget of token calls — the scarcest resource of the
 * system (200 calls per platform day). Every process of an installation shares, in Redis:
 *
 *   <prefix>:token:current       hash {token, expiresAt, fetchedAt, ttlMs}
 *   <prefix>:token:lock          the refresh lock (owner id, expires after lockTtlMs)
 *   <prefix>:token:calls:<day>   token calls made on that platform day (counted before each call)
 *   <prefix>:token:cooldown      token calls paused: credentials rejected, or a fresh token rejected (token-cooldown.ts)
 *   <prefix>:token:rejections    the streak of fresh tokens rejected, which doubles the pause
 *   <prefix>:token:failure       the last failed refresh, for processes that were waiting on it
 *
 * One process refreshes at a time; the others wait for its result. The count is checked and
 * incremented in one Lua script, so the limit holds however many processes race.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { RedisConnection } from '../base/queues.js';
import type { Config } from '../base/config.js';
import type { Logger } from '../base/log.js';
import { redisKey } from '../base/queues.js';
import { sleep } from '../base/backoff.js';
import { isRetryable } from '../base/retry.js';
import type { SecretScrubber } from '../base/secrets.js';
import type { TokenSource } from './api.js';
import { createTokenEndpoint, type TokenEndpoint } from './client.js';
import { CredentialsRejectedError, ENDPOINT, PlatformError } from './errors.js';
import { CredentialsCooldownError, TokenBudgetExhaustedError, TokenCooldownError, TokenWaitTimeoutError } from './token-errors.js';
import { TokenCooldown, type Cooldown, type CooldownKind } from './token-cooldown.js';
import { DEFAULT_TIMEZONE, formatLocalTime, platformDay } from './timestamp.js';

export interface TokenBudgetOptions {
  redis: RedisConnection;
  /** EXPEED_PREFIX */
  prefix: string;
  /** the token call (createTokenEndpoint); nothing else may call it. Absent without credentials: get() then fails without spending a call */
  fetchToken?: TokenEndpoint;
  /** token calls per platform day (default 200) */
  dailyLimit: number;
  /** calls kept for commands an operator runs by hand; scheduled work stops before them (default 10) */
  reserve: number;
  /** zone of the platform day (default Asia/Shanghai) */
  timezone: string;
  /** refresh this long before the token expires, at most a quarter of its lifetime (default 5 min) */
  refreshBeforeMs: number;
  /** the refresh lock expires after this, should its holder die; longer than a token call (default 45 s) */
  lockTtlMs: number;
  /** how long a process waits for another's refresh before giving up (default 60 s) */
  waitTimeoutMs: number;
  /** how often a waiting process looks for the new token (default 100 ms) */
  pollMs: number;
  /** token calls pause this long after the credentials or a fresh token were rejected (default 15 min) */
  cooldownMs: number;
  /** the pause doubles while fresh tokens keep being rejected, up to this (default 4 h) */
  maxCooldownMs: number;
  /** fingerprint of the credentials (credentialsFingerprint): new credentials are not held back by an old cool-down */
  credentialsId?: string;
  /** the clock of expiry and of the platform day (injectable for tests) */
  now: () => number;
  /** every token fetched or read is registered here, so it never reaches a log */
  scrubber?: SecretScrubber;
  log?: Pick<Logger, 'info' | 'warn'>;
  /** told of every token this process fetched (the service counts them for /metrics) */
  onRefresh?: () => void;
}

export const DEFAULT_TOKEN_BUDGET_OPTIONS: Omit<TokenBudgetOptions, 'redis' | 'prefix' | 'fetchToken' | 'credentialsId' | 'scrubber' | 'log' | 'onRefresh'> = {
  dailyLimit: 200,
  reserve: 10,
  timezone: DEFAULT_TIMEZONE,
  refreshBeforeMs: 5 * 60_000,
  lockTtlMs: 45_000,
  waitTimeoutMs: 60_000,
  pollMs: 100,
  cooldownMs: 15 * 60_000,
  maxCooldownMs: 4 * 3_600_000,
  now: Date.now,
};

/** What `expeed-sync token` shows — never the token itself. */
export interface TokenUsage {
  /** platform day, YYYY-MM-DD */
  day: string;
  calls: number;
  limit: number;
  reserve: number;
  /** epoch ms: the next platform midnight */
  resetsAt: number;
  tokenExpiresAt?: number;
  tokenFetchedAt?: number;
  /** a process is fetching a token right now */
  refreshing: boolean;
  cooldownUntil?: number;
  cooldownReason?: string;
  /** credentials: the token call was refused; token: the platform rejected a freshly fetched token */
  cooldownKind?: CooldownKind;
}

interface CachedToken {
  token: string;
  expiresAt: number;
  fetchedAt: number;
  ttlMs: number;
}

/** Counts one call if the day's allowance is not spent: {1, count} or {0, count}. */
const CONSUME = `
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) then return {0, n} end
n = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, n}`;

/** Drops the cached token only if it is still the one that failed. */
const INVALIDATE = `
if redis.call('HGET', KEYS[1], 'token') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

const DAY_KEY_TTL_MS = 3 * 86_400_000;

export class TokenBudget implements TokenSource {
  private readonly o: TokenBudgetOptions;
  private readonly keys: { current: string; lock: string; cooldown: string; failure: string; rejections: string };
  private readonly pause: TokenCooldown;
  /** the last token this process saw work: marked once in Redis, not on every call */
  private worked = '';
  /** one refresh per process and kind at a time; the Redis lock does the same across processes */
  private readonly inflight = new Map<boolean, Promise<string>>();
  private readonly closing = new AbortController();

  constructor(options: Partial<TokenBudgetOptions> & Pick<TokenBudgetOptions, 'redis' | 'prefix'>) {
    this.o = { ...DEFAULT_TOKEN_BUDGET_OPTIONS, ...options };
    if (!Number.isInteger(this.o.dailyLimit) || this.o.dailyLimit < 1) throw new RangeError(`token dailyLimit must be a whole number >= 1, got ${this.o.dailyLimit}`);
    if (!Number.isInteger(this.o.reserve) || this.o.reserve < 0 || this.o.reserve >= this.o.dailyLimit) {
      throw new RangeError(`token reserve must be a whole number from 0 to dailyLimit - 1 (${this.o.dailyLimit - 1}), got ${this.o.reserve}`);
    }
    const k = (...parts: string[]) => redisKey(this.o.prefix, 'token', ...parts);
    this.keys = { current: k('current'), lock: k('lock'), cooldown: k('cooldown'), failure: k('failure'), rejections: k('rejections') };
    this.pause = new TokenCooldown(this.o.redis, this.keys, { cooldownMs: this.o.cooldownMs, maxCooldownMs: this.o.maxCooldownMs });
  }

  async get(options: { useReserve?: boolean } = {}): Promise<string> {
    const cached = await this.read();
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
    await this.o.redis.eval(INVALIDATE, 1, this.keys.current, token);
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
    this.o.log?.warn({ until: new Date(c.until).toISOString(), pauseMs: c.ms }, 'the platform rejected a freshly fetched access token; token calls paused for every process');
    throw this.cooldownError(c);
  }

  async usage(): Promise<TokenUsage> {
    const now = this.o.now();
    const day = platformDay(now, this.o.timezone);
    const [calls, cached, lock, cooldown] = await Promise.all([
      this.o.redis.get(this.callsKey(day.day)),
      this.read(),
      this.o.redis.exists(this.keys.lock),
      this.pause.active(now, this.o.credentialsId),
    ]);
    const usage: TokenUsage = {
      day: day.day,
      calls: Number(calls ?? 0),
      limit: this.o.dailyLimit,
      reserve: this.o.reserve,
      resetsAt: day.end,
      refreshing: lock === 1,
    };
    if (cached) Object.assign(usage, { tokenExpiresAt: cached.expiresAt, tokenFetchedAt: cached.fetchedAt });
    if (cooldown) Object.assign(usage, { cooldownUntil: cooldown.until, cooldownReason: cooldown.reason, cooldownKind: cooldown.kind });
    return usage;
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
      throw new PlatformError('EXPEED_PLATFORM_KEY and EXPEED_SECRET_KEY are not set: no access token can be fetched', { endpoint: ENDPOINT.token, retryable: false });
    }
    const waitUntil = Date.now() + this.o.waitTimeoutMs;
    for (;;) {
      const now = this.o.now();
      const cooldown = await this.pause.active(now, this.o.credentialsId);
      if (cooldown) throw this.cooldownError(cooldown);
      const cached = await this.read();
      if (cached && this.fresh(cached)) return cached.token;
      const owner = randomUUID();
      if ((await this.o.redis.set(this.keys.lock, owner, 'PX', this.o.lockTtlMs, 'NX')) === 'OK') {
        try {
          return await this.fetchUnderLock(useReserve);
        } finally {
          await this.o.redis.eval(RELEASE, 1, this.keys.lock, owner);
        }
      }
      // someone else is refreshing: a token that is still valid serves until they are done
      if (cached && this.valid(cached)) return cached.token;
      const token = await this.waitForOther(waitUntil);
      if (token !== undefined) return token;
    }
  }

  private async fetchUnderLock(useReserve: boolean): Promise<string> {
    const startedAt = this.o.now();
    const cached = await this.read();
    // another process may have stored a token between our look and our lock
    if (cached && this.fresh(cached)) return cached.token;
    // a pause may have started while we waited for the lock
    const paused = await this.pause.active(startedAt, this.o.credentialsId);
    if (paused) throw this.cooldownError(paused);
    const day = platformDay(startedAt, this.o.timezone);
    const allowed = this.o.dailyLimit - (useReserve ? 0 : this.o.reserve);
    const [ok, calls] = (await this.o.redis.eval(CONSUME, 1, this.callsKey(day.day), allowed, DAY_KEY_TTL_MS)) as [number, number];
    if (ok !== 1) {
      if (cached && this.valid(cached)) return cached.token;
      const err = new TokenBudgetExhaustedError(day.end, formatLocalTime(day.end, this.o.timezone), calls, this.o.dailyLimit, useReserve ? 0 : this.o.reserve);
      this.o.log?.warn({ day: day.day, calls, limit: this.o.dailyLimit, resetsAt: new Date(day.end).toISOString() }, err.message);
      throw err;
    }
    try {
      const grant = await (this.o.fetchToken as TokenEndpoint)(this.closing.signal);
      this.o.scrubber?.add(grant.accessToken);
      const ttlMs = grant.expiresIn * 1000;
      const fresh: CachedToken = { token: grant.accessToken, expiresAt: startedAt + ttlMs, fetchedAt: startedAt, ttlMs };
      await this.o.redis
        .multi()
        // a new token has not worked yet: no field of the old one may carry over
        .del(this.keys.current)
        .hset(this.keys.current, { ...fresh })
        .pexpire(this.keys.current, ttlMs)
        .del(this.keys.failure)
        .exec();
      this.o.log?.info({ day: day.day, calls, limit: this.o.dailyLimit, expiresAt: new Date(fresh.expiresAt).toISOString() }, 'fetched a new platform access token');
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

  /** Waits for the lock holder's result: the token, undefined (lock free: try ourselves), or its error. */
  private async waitForOther(waitUntil: number): Promise<string | undefined> {
    const failureBefore = await this.o.redis.get(this.keys.failure);
    for (;;) {
      if (Date.now() >= waitUntil) throw new TokenWaitTimeoutError(this.o.waitTimeoutMs);
      await sleep(this.o.pollMs, this.closing.signal);
      const cached = await this.read();
      if (cached && this.valid(cached)) return cached.token;
      const failure = await this.o.redis.get(this.keys.failure);
      if (failure !== null && failure !== failureBefore) {
        // (a spent budget is not recorded here: each caller checks it against its own allowance)
        const f = JSON.parse(failure) as { message: string; retryable: boolean };
        throw new PlatformError(`another process failed to fetch the access token: ${f.message}`, { endpoint: ENDPOINT.token, retryable: f.retryable });
      }
      if ((await this.o.redis.exists(this.keys.lock)) === 0) return undefined;
    }
  }

  private async recordFailure(err: unknown, at: number): Promise<void> {
    const message = err instanceof Error ? err.message : String(err);
    const retryable = isRetryable(err);
    const writes = this.o.redis.multi();
    writes.set(this.keys.failure, JSON.stringify({ id: randomUUID(), at, message, retryable }), 'PX', this.o.waitTimeoutMs);
    if (err instanceof CredentialsRejectedError) {
      const cooldown = this.pause.credentialsRejected(writes, at, message, this.o.credentialsId);
      this.o.log?.warn({ until: new Date(cooldown.until).toISOString() }, 'platform rejected the credentials; token calls paused');
    }
    await writes.exec();
  }

  private cooldownError(c: Cooldown): PlatformError {
    const at = formatLocalTime(c.until, this.o.timezone);
    return c.kind === 'token' ? new TokenCooldownError(c.until, at, c.reason) : new CredentialsCooldownError(c.until, at, c.reason);
  }

  private async read(): Promise<CachedToken | undefined> {
    const h = await this.o.redis.hgetall(this.keys.current);
    if (!h.token) return undefined;
    // a token another process fetched must be scrubbed from this process's logs too
    this.o.scrubber?.add(h.token);
    return { token: h.token, expiresAt: Number(h.expiresAt), fetchedAt: Number(h.fetchedAt), ttlMs: Number(h.ttlMs) };
  }

  private fresh(t: CachedToken): boolean {
    const window = Math.min(this.o.refreshBeforeMs, t.ttlMs / 4);
    return this.o.now() < t.expiresAt - window;
  }

  private valid(t: CachedToken): boolean {
    return this.o.now() < t.expiresAt;
  }

  private callsKey(day: string): string {
    return redisKey(this.o.prefix, 'token', 'calls', day);
  }
}

/** A short, one-way fingerprint of the credentials (never the credentials themselves). */
export function credentialsFingerprint(platformKey: string, secretKey: string): string {
  return createHash('sha256').update(`${platformKey}\0${secretKey}`).digest('hex').slice(0, 16);
}

/** The budget as the service wires it from the configuration. */
export function tokenBudgetFromConfig(
  config: Config,
  redis: RedisConnection,
  extras: Partial<Omit<TokenBudgetOptions, 'redis' | 'prefix'>> = {},
): TokenBudget {
  const { platformKey, secretKey } = config;
  const fetchToken =
    platformKey && secretKey
      ? createTokenEndpoint({ baseUrl: config.baseUrl, platformKey, secretKey, timeoutMs: config.requestTimeoutMs, scrubber: extras.scrubber })
      : undefined;
  const lockTtlMs = Math.max(DEFAULT_TOKEN_BUDGET_OPTIONS.lockTtlMs, config.requestTimeoutMs + 15_000);
  return new TokenBudget({
    redis,
    prefix: config.prefix,
    fetchToken,
    dailyLimit: config.tokenDailyLimit,
    reserve: config.tokenReserve,
    cooldownMs: config.tokenCooldownMs,
    maxCooldownMs: config.tokenCooldownMaxMs,
    timezone: config.timezone,
    credentialsId: platformKey && secretKey ? credentialsFingerprint(platformKey, secretKey) : undefined,
    // the lock must outlive a slow token call, or a second process would start one too
    lockTtlMs,
    // and a waiter outlives the lock, so that it can take over from a process that died holding it
    waitTimeoutMs: Math.max(DEFAULT_TOKEN_BUDGET_OPTIONS.waitTimeoutMs, lockTtlMs + 15_000),
    ...extras,
  });
}
