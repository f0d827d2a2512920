import type { Redis } from 'ioredis';
import type { CallOptions, DeviceRef, HistoryQuery, PlatformClient } from './api.js';
import { sleep } from '../base/backoff.js';
import { redisKey } from '../base/redis.js';
import { MAX_PLATFORM_PAUSE_MS, platformPauseKey } from './platform-pause.js';

/**
 * A platform request rate shared by every worker process: at most `perSecond` requests start in
 * any one second, counted in Redis (`<prefix>:rate:platform:<second>`). BullMQ's own limiter counts
 * jobs, and one backfill job makes many requests, so the count has to be per request.
 * A request over the rate waits for the next second; it never fails. While the platform's pause
 * is in force (`<prefix>:platform:paused-until`, set after a 429/503 with Retry-After by
 * platform-pause.ts) every request waits for its end first, in every process.
 */
export interface RequestRateOptions {
  redis: Pick<Redis, 'eval'>;
  prefix: string;
  /** requests per second across all processes */
  perSecond: number;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

// KEYS: the second's count, the pause; ARGV: now. A negative answer is minus the end of the pause
const TAKE = `
local p = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
if p > tonumber(ARGV[1]) then return -p end
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], 2000) end
return n
`;

export class RequestRate {
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  private closed = false;

  constructor(private readonly options: RequestRateOptions) {
    if (!Number.isInteger(options.perSecond) || options.perSecond < 1)
      throw new RangeError(`request rate must be a whole number >= 1, got ${options.perSecond}`);
    this.now = options.now ?? Date.now;
    this.sleep = options.sleep ?? sleep;
  }

  /** Resolves when this process may send one request. */
  async take(signal?: AbortSignal): Promise<void> {
    for (;;) {
      if (this.closed) throw new Error('request rate limiter is closed; retryable in a new process');
      signal?.throwIfAborted();
      const now = this.now();
      const second = Math.floor(now / 1000);
      const keys = [
        redisKey(this.options.prefix, 'rate', 'platform', String(second)),
        platformPauseKey(this.options.prefix),
      ];
      const n = (await this.options.redis.eval(TAKE, 2, ...keys, String(now))) as number;
      if (n < 0) {
        await this.sleep(Math.min(-n - now, MAX_PLATFORM_PAUSE_MS));
        continue;
      }
      if (n <= this.options.perSecond) return;
      await this.sleep((second + 1) * 1000 - now + Math.floor(Math.random() * 20));
    }
  }

  close(): void {
    this.closed = true;
  }
}

/** Wraps a platform client so that every call first takes its place in the shared rate. */
export function rateLimitedPlatform(client: PlatformClient, rate: Pick<RequestRate, 'take'>): PlatformClient {
  return {
    deviceStatus: async (d: DeviceRef, o?: CallOptions) => (await rate.take(o?.signal), client.deviceStatus(d, o)),
    currentDatapoints: async (d: DeviceRef, ids?: string[], o?: CallOptions) => (
      await rate.take(o?.signal),
      client.currentDatapoints(d, ids, o)
    ),
    history: async (d: DeviceRef, q: HistoryQuery, o?: CallOptions) => (
      await rate.take(o?.signal),
      client.history(d, q, o)
    ),
    deviceSetting: async (d: DeviceRef, s: Record<string, unknown>, o?: CallOptions) => (
      await rate.take(o?.signal),
      client.deviceSetting(d, s, o)
    ),
  };
}
