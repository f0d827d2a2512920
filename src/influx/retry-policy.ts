import { EQUAL_JITTER, type Backoff } from '../base/backoff.js';

/**
 * How long the writer keeps trying while InfluxDB is unreachable or overloaded (429/5xx), before
 * it gives up with a retryable error and lets the caller's job try again later.
 */
export interface RetryPolicy {
  /** attempts per request, the first included (default 8) */
  maxAttempts: number;
  /** give up once this much time has passed since the first attempt (default 60 s) */
  maxElapsedMs: number;
  /** first backoff delay; doubles on every attempt (default 200 ms) */
  baseDelayMs: number;
  /** longest backoff delay, unless the server's Retry-After asks for more (default 10 s) */
  maxDelayMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  maxAttempts: 8,
  maxElapsedMs: 60_000,
  baseDelayMs: 200,
  maxDelayMs: 10_000,
};

/**
 * The writer's backoff: equal jitter (between half and the full ceiling), so that many workers do
 * not hit a recovering server in lockstep. A server's Retry-After is passed as the floor.
 */
export function influxBackoff(policy: RetryPolicy, random?: () => number): Backoff {
  return { baseMs: policy.baseDelayMs, maxMs: policy.maxDelayMs, jitter: EQUAL_JITTER, random };
}

export { parseRetryAfter } from '../base/retry.js';
