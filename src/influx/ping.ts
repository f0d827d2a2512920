/**
 * The start-up check of InfluxDB: `run` waits a bounded time for /ping to answer, then exits with
 * the cause instead of acknowledging pushes it could never write.
 */
import { sleep } from '../base/backoff.js';
import { isRetryableStatus } from '../base/retry.js';
import { InfluxUnavailableError } from './errors.js';
import { withDefaults } from '../base/options.js';

export interface WaitForInfluxOptions {
  url: string;
  /** total wait, ms */
  timeoutMs: number;
  /** between attempts, ms (default 1 s) */
  intervalMs?: number;
  /** per attempt, ms (default 2 s) */
  attemptTimeoutMs?: number;
  /** told about each failed attempt (the service logs it) */
  onRetry?: (reason: string, attempt: number) => void;
  fetch?: typeof fetch;
  now?: () => number;
}

export const DEFAULT_WAIT_FOR_INFLUX = { intervalMs: 1000, attemptTimeoutMs: 2000 };

/** Why a fetch failed, in a word where there is one: ECONNREFUSED, ENOTFOUND, TimeoutError. */
function reasonOf(err: unknown): string {
  const cause = (err as { cause?: { code?: string; errors?: Array<{ code?: string }> } }).cause;
  return cause?.code ?? cause?.errors?.[0]?.code ?? (err as Error).name ?? String(err);
}

export async function waitForInflux(options: WaitForInfluxOptions): Promise<void> {
  const o = withDefaults(DEFAULT_WAIT_FOR_INFLUX, options);
  const http = o.fetch ?? fetch;
  const now = o.now ?? Date.now;
  const deadline = now() + o.timeoutMs;
  for (let attempt = 1; ; attempt++) {
    let reason: string;
    try {
      const res = await http(`${o.url}/ping`, { signal: AbortSignal.timeout(o.attemptTimeoutMs) });
      await res.arrayBuffer().catch(() => undefined);
      // any answer but 408/429/5xx means a server is there; auth and the API are the writer's business
      if (!isRetryableStatus(res.status)) return;
      reason = `HTTP ${res.status}`;
    } catch (err) {
      reason = reasonOf(err);
    }
    if (now() >= deadline) {
      throw new InfluxUnavailableError(
        `cannot reach InfluxDB at ${o.url} within ${Math.round(o.timeoutMs / 1000)} s (${reason}; EXPEED_INFLUX_START_TIMEOUT)`,
      );
    }
    o.onRetry?.(reason, attempt);
    await sleep(Math.min(o.intervalMs, Math.max(0, deadline - now())));
  }
}
