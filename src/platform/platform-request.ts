/**
 * One JSON request to the platform, with a timeout, and bounded retries with exponential backoff
 * and jitter for what may pass (HTTP 5xx/429/408, network errors, timeouts). Result codes are not
 * interpreted here: the answer comes back as a checked object with its numeric `result_code`.
 * HTTP 429 and 503 with Retry-After are a PlatformThrottledError: with a `throttle` (the shared
 * pause, platform-pause.ts) the retry waits for every process's pause instead of the backoff;
 * without one, for the header's time (at most MAX_RETRY_AFTER_MS).
 */
import { backoffDelay, EQUAL_JITTER, sleep, type Backoff } from '../base/backoff.js';
import { isRetryableStatus, parseRetryAfter } from '../base/retry.js';
import type { SecretScrubber } from '../base/secrets.js';
import { PlatformProtocolError, PlatformThrottledError, PlatformUnavailableError, type Endpoint } from './errors.js';

export interface HttpOptions {
  /** per attempt, ms (default 30 000) */
  timeoutMs: number;
  /** attempts after the first for retryable failures (default 3) */
  retries: number;
  /** first backoff, doubled per attempt (default 500 ms) */
  backoffMs: number;
  /** longest backoff (default 10 000 ms) */
  maxBackoffMs: number;
  fetch: typeof fetch;
  /** 0 <= x < 1, for the jitter */
  random: () => number;
  scrubber?: SecretScrubber;
  /** told about each retry (for logs/metrics) */
  onRetry?: (info: { endpoint: Endpoint; attempt: number; delayMs: number; error: PlatformUnavailableError }) => void;
  /** the pause every process honours after a 429/503 with Retry-After (platform-pause.ts) */
  throttle?: Throttle;
}

export interface ThrottleInfo {
  endpoint: Endpoint;
  status: number;
  /** the header as sent */
  retryAfter: string;
}

/** A pause of platform calls shared by every process. */
export interface Throttle {
  /** records a throttled answer: the pause lasts the header's time (capped) */
  throttled(info: ThrottleInfo): Promise<unknown>;
  /** resolves once no pause is in force */
  wait(signal?: AbortSignal): Promise<void>;
}

/** The longest wait a Retry-After header causes when no shared throttle is given (as MAX_PLATFORM_PAUSE_MS). */
export const MAX_RETRY_AFTER_MS = 5 * 60_000;

export const DEFAULT_HTTP_OPTIONS: HttpOptions = {
  timeoutMs: 30_000,
  retries: 3,
  backoffMs: 500,
  maxBackoffMs: 10_000,
  fetch: (...args) => globalThis.fetch(...args),
  random: Math.random,
};

export interface JsonRequest {
  endpoint: Endpoint;
  url: string;
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  body?: string;
  signal?: AbortSignal;
  /** a timed-out POST may have been applied: retrying it is the caller's decision (default true) */
  retryTimeouts?: boolean;
  /**
   * May the request be sent again after it may have reached the platform? Default: GET yes, POST
   * no — a POST is then retried only when it certainly never arrived (connection refused, 408, 429).
   */
  idempotent?: boolean;
  /** override of `HttpOptions.retries` (the token call must never be repeated behind the budget's back) */
  retries?: number;
}

/** A platform answer: a JSON object with a numeric result_code. */
export interface VendorAnswer {
  code: number;
  message: string | undefined;
  body: Record<string, unknown>;
}

/** The platform's backoff: equal jitter, so a retry never comes sooner than half its ceiling. */
export function platformBackoff(options: Pick<HttpOptions, 'backoffMs' | 'maxBackoffMs' | 'random'>): Backoff {
  return { baseMs: options.backoffMs, maxMs: options.maxBackoffMs, jitter: EQUAL_JITTER, random: options.random };
}

export async function requestJson(req: JsonRequest, options: HttpOptions): Promise<VendorAnswer> {
  const retries = req.retries ?? options.retries;
  for (let attempt = 0; ; attempt++) {
    try {
      return await attemptOnce(req, options);
    } catch (err) {
      const throttled = err instanceof PlatformThrottledError ? err : undefined;
      if (throttled && options.throttle)
        await options.throttle.throttled({
          endpoint: req.endpoint,
          status: throttled.status ?? 429,
          retryAfter: throttled.retryAfter,
        });
      const idempotent = req.idempotent ?? (req.method ?? 'GET') === 'GET';
      const retryable =
        err instanceof PlatformUnavailableError &&
        (req.retryTimeouts !== false || !(err.cause instanceof TimeoutMarker)) &&
        (idempotent || !err.mayHaveReached);
      if (!retryable || attempt >= retries || req.signal?.aborted) throw err;
      const asked = throttled ? parseRetryAfter(throttled.retryAfter) : undefined;
      const delayMs =
        asked !== undefined ? Math.min(asked, MAX_RETRY_AFTER_MS) : backoffDelay(attempt, platformBackoff(options));
      options.onRetry?.({ endpoint: req.endpoint, attempt: attempt + 1, delayMs, error: err });
      if (asked !== undefined && options.throttle) await options.throttle.wait(req.signal);
      else await sleep(delayMs, req.signal);
    }
  }
}

/** Marks the cause of a PlatformUnavailableError that was a timeout. */
class TimeoutMarker extends Error {}

async function attemptOnce(req: JsonRequest, options: HttpOptions): Promise<VendorAnswer> {
  const { endpoint } = req;
  const scrub = (s: string) => (options.scrubber ? options.scrubber.scrub(s) : s);
  // a timer cleared as soon as the body is read (AbortSignal.timeout would keep every signal alive for timeoutMs)
  const timer = new AbortController();
  const timeout = timer.signal;
  const clock = setTimeout(() => timer.abort(), options.timeoutMs);
  const signal = req.signal ? AbortSignal.any([req.signal, timeout]) : timeout;
  let status: number;
  let text: string;
  let retryAfter: string | null = null;
  try {
    const res = await options.fetch(req.url, {
      method: req.method ?? 'GET',
      headers: {
        accept: 'application/json',
        ...(req.body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...req.headers,
      },
      body: req.body,
      signal,
    });
    status = res.status;
    if (status === 429 || status === 503) retryAfter = res.headers.get('retry-after');
    text = await res.text();
  } catch (err) {
    if (req.signal?.aborted) throw req.signal.reason;
    if (timeout.aborted) {
      throw new PlatformUnavailableError(
        endpoint,
        `no answer within ${options.timeoutMs} ms`,
        undefined,
        new TimeoutMarker('timeout'),
      );
    }
    throw new PlatformUnavailableError(endpoint, scrub(networkReason(err)), undefined, err);
  } finally {
    clearTimeout(clock);
  }
  if (retryAfter !== null && retryAfter.trim() !== '') {
    // the header is shown as sent, bounded: it is the platform's text
    const header = scrub(retryAfter.trim().slice(0, 64));
    throw new PlatformThrottledError(endpoint, `HTTP ${status}${snippet(text, scrub)}`, status, header);
  }
  if (isRetryableStatus(status)) {
    throw new PlatformUnavailableError(endpoint, `HTTP ${status}${snippet(text, scrub)}`, status);
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    const prefix = status >= 300 ? `HTTP ${status}, ` : '';
    throw new PlatformProtocolError(endpoint, `${prefix}not JSON${snippet(text, scrub)}`, status);
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new PlatformProtocolError(
      endpoint,
      `expected a JSON object, got ${Array.isArray(body) ? 'an array' : JSON.stringify(body)}`,
      status,
    );
  }
  const obj = body as Record<string, unknown>;
  const code = toInteger(obj.result_code);
  if (code === undefined) {
    const prefix = status >= 300 ? `HTTP ${status}, ` : '';
    throw new PlatformProtocolError(
      endpoint,
      `${prefix}${obj.result_code === undefined ? 'missing result_code' : `result_code is not a number (${JSON.stringify(obj.result_code)})`}`,
      status,
    );
  }
  // one vendor example answers with result_msg instead of result_message
  const message = obj.result_message ?? obj.result_msg;
  return { code, message: message === undefined || message === null ? undefined : String(message), body: obj };
}

/** A whole number sent as a number or a numeric string; undefined otherwise. */
export function toInteger(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isInteger(value) ? value : undefined;
  if (typeof value === 'string' && /^\s*-?\d+\s*$/.test(value)) return Number(value);
  return undefined;
}

function snippet(text: string, scrub: (s: string) => string): string {
  const t = text.trim().replace(/\s+/g, ' ');
  if (t === '') return ' (empty body)';
  return `: ${scrub(t.length > 200 ? `${t.slice(0, 200)}…` : t)}`;
}

function networkReason(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  if (cause?.code) return `${cause.code}${cause.message ? ` (${cause.message})` : ''}`;
  if (cause?.message) return cause.message;
  return err instanceof Error ? err.message : String(err);
}
