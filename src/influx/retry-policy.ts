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
 * Delay before attempt `attempt + 1` (attempt counts from 1): exponential with jitter between half
 * and the full value, so that many workers do not hit a recovering server in lockstep. A server's
 * Retry-After is a floor, never shortened.
 */
export function backoffDelay(policy: RetryPolicy, attempt: number, retryAfterMs?: number, random = Math.random): number {
  const exp = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
  const jittered = Math.round(exp * (0.5 + random() * 0.5));
  return retryAfterMs !== undefined ? Math.max(jittered, retryAfterMs) : jittered;
}

/** Retry-After as milliseconds: delay-seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | string[] | null | undefined, now = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || v === null || v.trim() === '') return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
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
