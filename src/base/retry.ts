/**
 * The one answer to "can trying again help, and when?". Every error of ours carries `retryable`
 * (and `retryAt`, epoch ms, when a retry can only work after a known instant): most extend
 * ExpeedError. Errors thrown by libraries (BullMQ, the InfluxDB client, ioredis, fetch and the
 * sockets under them) are classified here and nowhere else. An error nothing says anything about
 * counts as retryable: a retry may cost a little, dropping work loses it.
 */
import { HttpError, RequestTimedOutError } from '@influxdata/influxdb-client';
import { UnrecoverableError } from 'bullmq';
import { ReplyError } from 'ioredis';

/**
 * The base of ioredis' own errors (redis-errors' RedisError): ReplyError (Redis answered with an
 * error), MaxRetriesPerRequestError (no connection for a command), ClusterAllFailedError... ioredis
 * exports only ReplyError, so the base is reached through it.
 */
const RedisError = Object.getPrototypeOf(ReplyError) as new () => Error;

/** What an error of ours says about a retry. */
export interface RetryFacts {
  readonly retryable: boolean;
  /** epoch ms before which a retry cannot succeed (only read when `retryable`) */
  readonly retryAt?: number;
}

export interface ExpeedErrorOptions extends RetryFacts {
  cause?: unknown;
}

/** The base of our errors: a message for people, `retryable`/`retryAt` for the code that decides. */
export class ExpeedError extends Error implements RetryFacts {
  readonly retryable: boolean;
  readonly retryAt?: number;

  constructor(message: string, options: ExpeedErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.retryable = options.retryable;
    if (options.retryAt !== undefined) this.retryAt = options.retryAt;
  }
}

/** Retry-After as milliseconds: delay-seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | string[] | null | undefined, now = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || v === null || v.trim() === '') return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** HTTP statuses that say "not now" rather than "not this": 408, 429 and every 5xx. */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/** Socket and DNS error codes: the other side was not reachable, or went away. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ENETUNREACH',
  'ENETDOWN',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
]);

function networkCode(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && NETWORK_CODES.has(code)) return true;
  // fetch (undici) wraps the socket's error: TypeError('fetch failed', { cause })
  return err instanceof TypeError && err.cause !== undefined && err.cause !== err && networkCode(err.cause);
}

export interface RetryVerdict {
  retryable: boolean;
  /** epoch ms before which a retry cannot work; only when retryable */
  retryAt?: number;
  /** false when nothing about the error said: `retryable` is then the default, true */
  declared: boolean;
}

/** How an error is to be treated: its own facts, a library's known error, or the default. */
export function retryVerdict(err: unknown): RetryVerdict {
  if (err === null || typeof err !== 'object') return { retryable: true, declared: false };
  const facts = err as { retryable?: unknown; retryAt?: unknown };
  if (typeof facts.retryable === 'boolean') {
    const at =
      facts.retryable && typeof facts.retryAt === 'number' && Number.isFinite(facts.retryAt)
        ? facts.retryAt
        : undefined;
    return at === undefined
      ? { retryable: facts.retryable, declared: true }
      : { retryable: true, retryAt: at, declared: true };
  }
  // a processor that already decided: BullMQ fails the job without retrying it
  if (err instanceof UnrecoverableError) return { retryable: false, declared: true };
  // InfluxDB client: the status decides (the write path turns these into our own errors first)
  if (err instanceof HttpError) return { retryable: isRetryableStatus(err.statusCode), declared: true };
  if (err instanceof RequestTimedOutError) return { retryable: true, declared: true };
  // Redis unreachable, or it answered with an error (LOADING, BUSY, OOM, CLUSTERDOWN, TRYAGAIN...): it may pass
  if (err instanceof RedisError) return { retryable: true, declared: true };
  if (networkCode(err)) return { retryable: true, declared: true };
  return { retryable: true, declared: false };
}

/** Can a later attempt succeed? True unless the error (or what the library's error means) says no. */
export function isRetryable(err: unknown): boolean {
  return retryVerdict(err).retryable;
}

/** When a retry can work (epoch ms), for a retryable error that knows; undefined otherwise. */
export function retryAt(err: unknown): number | undefined {
  return retryVerdict(err).retryAt;
}
