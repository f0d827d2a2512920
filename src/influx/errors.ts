/**
 * What can go wrong when writing to InfluxDB, and whether trying again can help. Neither error
 * carries a token or password: messages are built from the server's answer and our own text.
 */
import { ExpeedError } from '../base/retry.js';

/** InfluxDB did not answer, or answered 408/429/5xx, for longer than the retry policy allows. A later retry can help. */
export class InfluxUnavailableError extends ExpeedError {
  constructor(
    message: string,
    /** how long the server asked us to wait (Retry-After), when it said: the floor of the job's next backoff */
    readonly retryAfterMs?: number,
    options?: { cause?: unknown },
  ) {
    super(message, { retryable: true, cause: options?.cause });
  }
}

/**
 * InfluxDB refused the request. `scope: 'points'` (400/413/422 on a write) means the lines sent are
 * at fault — the writer isolates them and sets them aside, callers never see it. `scope: 'request'`
 * means the configuration is (wrong token, missing bucket, unknown server): retrying the same
 * request cannot help until an operator fixes it.
 */
export class InfluxRejectedError extends ExpeedError {
  constructor(
    message: string,
    readonly status: number | undefined,
    readonly scope: 'points' | 'request',
    options?: { cause?: unknown },
  ) {
    super(message, { retryable: false, cause: options?.cause });
  }
}
