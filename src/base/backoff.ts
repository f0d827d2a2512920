/**
 * The one backoff formula and the one sleep. Every retry loop (platform requests, InfluxDB
 * writes, backfill and ingest jobs) computes its wait here; they differ only in the parameters.
 */

export interface Backoff {
  /** the ceiling of the first retry's wait, ms; doubled per retry */
  baseMs: number;
  /** the ceiling never grows beyond this, ms */
  maxMs: number;
  /**
   * The wait is the ceiling times a factor drawn evenly from [low, high): [0, 1] is full jitter,
   * [0.5, 1] "equal jitter" (never less than half, so retries still back off), [1, 1] none,
   * [0.8, 1.2] ±20 %. Jitter keeps many waiters from retrying in lockstep.
   */
  jitter: readonly [low: number, high: number];
  /** 0 <= x < 1 (default Math.random) */
  random?: () => number;
}

export const EQUAL_JITTER = [0.5, 1] as const;
export const NO_JITTER = [1, 1] as const;

/**
 * The wait before retry number `retry` (0 = the first retry, after the first failure), in whole
 * ms: min(maxMs, baseMs × 2^retry) × jitter. `floorMs` (e.g. a server's Retry-After) is never
 * shortened.
 */
export function backoffDelay(retry: number, backoff: Backoff, floorMs?: number): number {
  // the exponent is bounded so that 0 × 2^n stays 0 (2^1024 would be Infinity, and 0 × Infinity NaN)
  const exponent = Math.min(Math.max(0, retry), 1000);
  const ceiling = Math.min(backoff.maxMs, backoff.baseMs * 2 ** exponent);
  const [low, high] = backoff.jitter;
  const factor = high === low ? low : low + (backoff.random ?? Math.random)() * (high - low);
  const delay = Math.round(ceiling * factor);
  return floorMs !== undefined && floorMs > delay ? floorMs : delay;
}

/** setTimeout as a promise that an AbortSignal ends early (rejecting with the signal's reason). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
