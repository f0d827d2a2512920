/**
 * The token cool-down, shared in Redis by every process and every endpoint: while it lasts, no
 * process fetches an access token. Two things start one:
 *
 *   - `credentials`: the token call itself answered code 1 (wrong platform key / secret key);
 *   - `token`: the platform answered code 1 to an access token that had never worked — a token
 *     fetched moments ago. Refreshing again would only drain the 200 daily calls, so the pause
 *     doubles (base, 2x, 4x... up to maxMs) while such rejections repeat, and a token that works
 *     resets it.
 *
 *   <prefix>:token:cooldown   {until, reason, kind, credentialsId, ms}, expires with the pause
 *   <prefix>:token:rejections {tokenId, ms}: the last pause started by a rejected token
 */
import { createHash } from 'node:crypto';
import type { RedisConnection as Redis } from '../../base/redis.js';
import { withDefaults } from '../../base/options.js';

export type CooldownKind = 'credentials' | 'token';

export interface Cooldown {
  until: number;
  reason: string;
  kind: CooldownKind;
  /** length of this pause, ms */
  ms: number;
  credentialsId?: string;
}

export interface TokenCooldownOptions {
  /** first pause, ms (EXPEED_TOKEN_COOLDOWN, default 15 min) */
  cooldownMs: number;
  /** longest pause while rejections of fresh tokens repeat, ms (EXPEED_TOKEN_COOLDOWN_MAX, default 4 h) */
  maxCooldownMs: number;
}

export const DEFAULT_TOKEN_COOLDOWN_OPTIONS: TokenCooldownOptions = {
  cooldownMs: 15 * 60_000,
  maxCooldownMs: 4 * 3_600_000,
};

/** The streak is forgotten a day after its last pause ended without another rejection. */
const STREAK_KEEP_MS = 86_400_000;

/**
 * KEYS: current, cooldown, rejections
 * ARGV: token, tokenId, now, baseMs, maxMs, reason, credentialsId, streakTtlMs
 * -> 'gone' (no longer the cached token: someone else dealt with it), 'worked' (it had worked: it
 * expired or was revoked; dropped), or the cool-down record this rejection started or belongs to.
 */
const REJECT = `
local s = redis.call('GET', KEYS[3])
local streak = s and cjson.decode(s)
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then
  -- another call saw it rejected first: the pause it started, if it started one
  if streak and streak.tokenId == ARGV[2] then return redis.call('GET', KEYS[2]) or 'gone' end
  return 'gone'
end
local worked = redis.call('HGET', KEYS[1], 'worked')
redis.call('DEL', KEYS[1])
if worked == '1' then return 'worked' end
local last = 0
if streak then last = tonumber(streak.ms) end
local ms = tonumber(ARGV[4])
if last > 0 then ms = math.min(last * 2, tonumber(ARGV[5])) end
local rec = '{"until":' .. string.format('%d', tonumber(ARGV[3]) + ms) .. ',"ms":' .. string.format('%d', ms) ..
  ',"kind":"token","reason":' .. cjson.encode(ARGV[6]) .. ',"credentialsId":' .. cjson.encode(ARGV[7]) .. '}'
redis.call('SET', KEYS[2], rec, 'PX', ms)
redis.call('SET', KEYS[3], cjson.encode({tokenId = ARGV[2], ms = ms}), 'PX', tonumber(ARGV[8]) + ms)
return rec`;

/** Marks the cached token as one that worked (only if it is still cached) and ends the streak. */
const WORKED = `
if redis.call('HGET', KEYS[1], 'token') == ARGV[1] then redis.call('HSET', KEYS[1], 'worked', '1') end
return redis.call('DEL', KEYS[2])`;

export type Rejection = { outcome: 'gone' | 'worked' } | { outcome: 'cooldown'; cooldown: Cooldown };

export class TokenCooldown {
  private readonly o: TokenCooldownOptions;

  constructor(
    private readonly redis: Redis,
    private readonly keys: { current: string; cooldown: string; rejections: string },
    options: Partial<TokenCooldownOptions> = {},
  ) {
    this.o = withDefaults(DEFAULT_TOKEN_COOLDOWN_OPTIONS, options);
    for (const [name, v] of Object.entries(this.o)) {
      if (!Number.isInteger(v) || v < 1)
        throw new RangeError(`token ${name} must be a whole number of ms >= 1, got ${v}`);
    }
    if (this.o.maxCooldownMs < this.o.cooldownMs)
      throw new RangeError(
        `token maxCooldownMs (${this.o.maxCooldownMs}) must not be below cooldownMs (${this.o.cooldownMs})`,
      );
  }

  /** The pause in force at `now` for these credentials (new credentials are not held back by an old one). */
  async active(now: number, credentialsId: string | undefined): Promise<Cooldown | undefined> {
    const raw = await this.redis.get(this.keys.cooldown);
    if (raw === null) return undefined;
    const c = JSON.parse(raw) as Cooldown;
    c.kind ??= 'credentials'; // records written before there were two kinds
    if (c.until <= now) return undefined;
    if (c.credentialsId && credentialsId && c.credentialsId !== credentialsId) return undefined;
    return c;
  }

  /** Adds the credentials pause to a transaction that records a failed token call. */
  credentialsRejected(
    writes: ReturnType<Redis['multi']>,
    at: number,
    reason: string,
    credentialsId: string | undefined,
  ): Cooldown {
    const c: Cooldown = {
      until: at + this.o.cooldownMs,
      ms: this.o.cooldownMs,
      kind: 'credentials',
      reason,
      credentialsId: credentialsId ?? '',
    };
    writes.set(this.keys.cooldown, JSON.stringify(c), 'PX', this.o.cooldownMs);
    return c;
  }

  /** The platform answered code 1 to `token`; drops it from the cache and decides what that means. */
  async tokenRejected(
    token: string,
    at: number,
    reason: string,
    credentialsId: string | undefined,
  ): Promise<Rejection> {
    const out = (await this.redis.eval(
      REJECT,
      3,
      this.keys.current,
      this.keys.cooldown,
      this.keys.rejections,
      token,
      tokenId(token),
      at,
      this.o.cooldownMs,
      this.o.maxCooldownMs,
      reason,
      credentialsId ?? '',
      STREAK_KEEP_MS,
    )) as string;
    if (out === 'gone' || out === 'worked') return { outcome: out };
    return { outcome: 'cooldown', cooldown: JSON.parse(out) as Cooldown };
  }

  /** The platform accepted `token`: a later code 1 on it means expiry, and the streak is over. */
  async tokenWorked(token: string): Promise<void> {
    await this.redis.eval(WORKED, 2, this.keys.current, this.keys.rejections, token);
  }

  /** Lifts the pause and forgets the streak; true when there was a pause. */
  async clear(): Promise<boolean> {
    const [[, n]] = (await this.redis.multi().del(this.keys.cooldown).del(this.keys.rejections).exec()) as Array<
      [Error | null, number]
    >;
    return n === 1;
  }
}

/** Names a token in Redis records without storing it twice. */
function tokenId(token: string): string {
  return createHash('sha256').update(token).digest('hex').slice(0, 16);
}
