/**
 * The platform's "not now", shared by every process on one prefix. An HTTP 429 or 503 with
 * Retry-After (delay-seconds or an HTTP date) sets `<prefix>:platform:paused-until` (epoch ms);
 * the shared request rate (request-rate.ts) waits for it before every platform request, and a
 * request retried inside the HTTP layer waits for it too. The wait is capped at
 * MAX_PLATFORM_PAUSE_MS (a longer header is logged as capped). A pause is logged once, when it
 * begins; later throttled answers within it only move its end.
 */
import type { Redis } from 'ioredis';
import { sleep } from '../base/backoff.js';
import type { Logger } from '../base/log.js';
import { redisKey } from '../base/redis.js';
import { parseRetryAfter } from '../base/retry.js';
import type { Endpoint } from './errors.js';
import type { Throttle, ThrottleInfo } from './platform-request.js';

/** The longest pause a Retry-After header can cause: 5 minutes. */
export const MAX_PLATFORM_PAUSE_MS = 5 * 60_000;

/** The key holding the end of the pause (epoch ms), under the prefix. */
export function platformPauseKey(prefix: string): string {
  return redisKey(prefix, 'platform', 'paused-until');
}

export interface PlatformPauseOptions {
  redis: Pick<Redis, 'eval' | 'get'>;
  prefix: string;
  /** default MAX_PLATFORM_PAUSE_MS */
  maxMs?: number;
  log?: Pick<Logger, 'warn'>;
  /** told about every throttled answer (for expeed_platform_throttled_total) */
  onThrottled?: (info: { endpoint: Endpoint; status: number }) => void;
  now?: () => number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/** What one throttled answer did to the shared pause. */
export interface PauseOutcome {
  /** the wait the header asked for, ms (undefined when unreadable) */
  askedMs: number | undefined;
  /** the wait applied, ms: the header's, at most the maximum */
  waitMs: number;
  capped: boolean;
  /** 'began': no pause was in force; 'extended': it now ends later; 'within': it already ended later */
  effect: 'began' | 'extended' | 'within';
}

// ARGV: until, now, ttl ms. 2: a pause began, 1: one in force was extended, 0: it ends later already
const EXTEND = `
local cur = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local u = tonumber(ARGV[1])
if u <= cur then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
if cur > tonumber(ARGV[2]) then return 1 end
return 2
`;

export class PlatformPause implements Throttle {
  private readonly key: string;
  private readonly maxMs: number;
  private readonly now: () => number;
  private readonly sleep: (ms: number, signal?: AbortSignal) => Promise<void>;

  constructor(private readonly o: PlatformPauseOptions) {
    this.key = platformPauseKey(o.prefix);
    this.maxMs = o.maxMs ?? MAX_PLATFORM_PAUSE_MS;
    if (!Number.isFinite(this.maxMs) || this.maxMs < 0)
      throw new RangeError(`the longest platform pause must be a non-negative number of ms, got ${o.maxMs}`);
    this.now = o.now ?? Date.now;
    this.sleep = o.sleep ?? sleep;
  }

  /** Records a throttled answer: every process's platform calls wait until the (capped) time it names. */
  async throttled(info: ThrottleInfo): Promise<PauseOutcome> {
    this.o.onThrottled?.({ endpoint: info.endpoint, status: info.status });
    const now = this.now();
    const askedMs = parseRetryAfter(info.retryAfter, now);
    const capped = askedMs !== undefined && askedMs > this.maxMs;
    const waitMs = askedMs === undefined ? 0 : Math.min(askedMs, this.maxMs);
    if (waitMs <= 0) return { askedMs, waitMs: 0, capped, effect: 'within' };
    const until = now + waitMs;
    // the key outlives the pause a little: its value, not its expiry, says when the pause ends
    const r = (await this.o.redis.eval(
      EXTEND,
      1,
      this.key,
      String(until),
      String(now),
      String(waitMs + 60_000),
    )) as number;
    const effect = r === 2 ? 'began' : r === 1 ? 'extended' : 'within';
    if (effect === 'began' || (capped && effect === 'extended')) {
      this.o.log?.warn(
        {
          endpoint: info.endpoint,
          status: info.status,
          retryAfter: info.retryAfter,
          pauseMs: waitMs,
          until: new Date(until).toISOString(),
          ...(capped ? { capped: true, maxMs: this.maxMs } : {}),
        },
        capped
          ? `the platform asked to wait longer than ${this.maxMs / 1000} s (HTTP ${info.status}); every process's platform calls pause for ${this.maxMs / 1000} s`
          : `the platform asked to wait (HTTP ${info.status}); every process's platform calls pause for ${waitMs / 1000} s`,
      );
    }
    return { askedMs, waitMs, capped, effect };
  }

  /** The end of the pause in force (epoch ms), or undefined when none is. */
  async pausedUntil(): Promise<number | undefined> {
    const raw = await this.o.redis.get(this.key);
    const until = raw === null ? NaN : Number(raw);
    return Number.isFinite(until) && until > this.now() ? until : undefined;
  }

  /** Resolves once no pause is in force (another process may extend it while this one waits). */
  async wait(signal?: AbortSignal): Promise<void> {
    for (;;) {
      signal?.throwIfAborted();
      const until = await this.pausedUntil();
      if (until === undefined) return;
      await this.sleep(Math.min(until - this.now(), this.maxMs), signal);
    }
  }
}
