/**
 * One line-protocol body POSTed to InfluxDB until it is acknowledged: `/write` (1.x) or
 * `/api/v2/write` (2.x, 3.x, Cloud), through the client library's transport, retried with backoff
 * on network errors, 408, 429 and 5xx (honouring Retry-After). Everything else is classified so the
 * writer knows whether the lines or the configuration are at fault.
 */
import { InfluxDB, HttpError, type Transport } from '@influxdata/influxdb-client';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { backoffDelay, sleep } from '../base/backoff.js';
import type { Logger } from '../base/log.js';
import { isRetryableStatus } from '../base/retry.js';
import type { WriteApiVersion } from './api-detect.js';
import { InfluxRejectedError, InfluxUnavailableError } from './errors.js';
import { influxBackoff, parseRetryAfter, type RetryPolicy } from './retry-policy.js';

export interface WriteTarget {
  url: string;
  api: WriteApiVersion;
  bucket: string;
  org?: string;
  /** 2.x+ token, or `user:password` for 1.x with authentication */
  token?: string;
  /** 1.x retention policy to write into (default: the database's default RP) */
  rp?: string;
}

/** The authorization header of a target: `Token` for 2.x+ (and 1.8+), Basic for 1.x `user:password`. */
export function authHeaders(target: Pick<WriteTarget, 'api' | 'token'>): Record<string, string> {
  if (!target.token) return {};
  if (target.api === 'v1' && target.token.includes(':')) {
    return { authorization: `Basic ${Buffer.from(target.token).toString('base64')}` };
  }
  return { authorization: `Token ${target.token}` };
}

export function writePath(target: WriteTarget): string {
  if (target.api === 'v1')
    return `/write?${new URLSearchParams({ db: target.bucket, precision: 'ms', ...(target.rp ? { rp: target.rp } : {}) })}`;
  const params = new URLSearchParams({ bucket: target.bucket, precision: 'ms' });
  if (target.org) params.set('org', target.org);
  return `/api/v2/write?${params}`;
}

export interface WriteRequestOptions {
  retry: RetryPolicy;
  /** per-request socket timeout, ms */
  timeoutMs: number;
  /** gzip bodies larger than this many bytes; 0 = never (on 2 shared cores gzip costs more than it saves locally) */
  gzipThreshold: number;
  /** replaces the client library's transport (tests, custom TLS) */
  transport?: Pick<Transport, 'request'>;
  logger?: Logger;
  /** called on a 1.x "database not found" before retrying once (the database was dropped under us) */
  onMissingDatabase?: () => Promise<void>;
}

type Outcome =
  | { kind: 'retry'; message: string; retryAfterMs?: number }
  | { kind: 'points'; status: number; message: string }
  | { kind: 'request'; status?: number; message: string }
  | { kind: 'missing-database'; message: string };

function serverMessage(err: HttpError): string {
  try {
    const body = JSON.parse(err.body ?? '') as { error?: string; message?: string };
    return body.error ?? body.message ?? err.body ?? err.message;
  } catch {
    return (err.body || err.message || `HTTP ${err.statusCode}`).slice(0, 2000);
  }
}

function classify(err: unknown, api: WriteApiVersion): Outcome {
  if (err instanceof HttpError) {
    const status = err.statusCode;
    const message = `HTTP ${status}: ${serverMessage(err)}`;
    const headers = err.headers as Record<string, string | string[] | undefined> | undefined;
    if (isRetryableStatus(status))
      return { kind: 'retry', message, retryAfterMs: parseRetryAfter(headers?.['retry-after']) };
    if (status === 400 || status === 413 || status === 422) return { kind: 'points', status, message };
    if (status === 404 && api === 'v1' && /database not found/i.test(message))
      return { kind: 'missing-database', message };
    if (status === 401 || status === 403)
      return { kind: 'request', status, message: `${message} (check INFLUX_TOKEN / INFLUX_ORG)` };
    if (status === 404)
      return { kind: 'request', status, message: `${message} (check INFLUX_BUCKET, INFLUX_ORG and INFLUX_API)` };
    return { kind: 'request', status, message };
  }
  // network errors, socket timeouts, a server that closed the connection: trying again can help
  return { kind: 'retry', message: err instanceof Error ? err.message || err.name : String(err) };
}

export class WriteRequest {
  private readonly transport: Pick<Transport, 'request'>;
  private readonly agent?: HttpAgent;
  private readonly path: string;
  private readonly headers: Record<string, string>;

  constructor(
    private readonly target: WriteTarget,
    private readonly options: WriteRequestOptions,
  ) {
    if (options.transport) {
      this.transport = options.transport;
    } else {
      // our own keep-alive agent, destroyed by close(), so sockets do not outlive the writer
      this.agent = target.url.startsWith('https:')
        ? new HttpsAgent({ keepAlive: true })
        : new HttpAgent({ keepAlive: true });
      this.transport = new InfluxDB({
        url: target.url,
        timeout: options.timeoutMs,
        transportOptions: { agent: this.agent },
      }).transport;
    }
    this.path = writePath(target);
    this.headers = { 'content-type': 'text/plain; charset=utf-8', ...authHeaders(target) };
  }

  /**
   * Resolves once InfluxDB acknowledged the body (2xx). Throws InfluxRejectedError `points` when
   * the lines are at fault, `request` when the configuration is, and InfluxUnavailableError when
   * the retry policy ran out.
   */
  async send(body: string, signal?: AbortSignal): Promise<void> {
    const { retry } = this.options;
    const started = Date.now();
    let reopened = false;
    for (let attempt = 1; ; attempt++) {
      signal?.throwIfAborted();
      let outcome: Outcome;
      try {
        await this.transport.request(this.path, body, {
          method: 'POST',
          headers: this.headers,
          signal,
          ...(this.options.gzipThreshold > 0 ? { gzipThreshold: this.options.gzipThreshold } : {}),
        });
        return;
      } catch (err) {
        if (signal?.aborted) throw signal.reason;
        outcome = classify(err, this.target.api);
      }
      if (outcome.kind === 'points') throw new InfluxRejectedError(outcome.message, outcome.status, 'points');
      if (outcome.kind === 'request')
        throw new InfluxRejectedError(`InfluxDB refused the write: ${outcome.message}`, outcome.status, 'request');
      if (outcome.kind === 'missing-database') {
        if (reopened || !this.options.onMissingDatabase)
          throw new InfluxRejectedError(`InfluxDB: ${outcome.message}`, 404, 'request');
        reopened = true;
        await this.options.onMissingDatabase();
        continue;
      }
      const delay = backoffDelay(attempt - 1, influxBackoff(retry), outcome.retryAfterMs);
      const elapsed = Date.now() - started;
      if (attempt >= retry.maxAttempts || elapsed + delay > retry.maxElapsedMs) {
        throw new InfluxUnavailableError(
          `InfluxDB at ${this.target.url} is unavailable after ${attempt} attempt(s) in ${elapsed} ms: ${outcome.message}`,
          outcome.retryAfterMs,
        );
      }
      this.options.logger?.warn({ attempt, delayMs: delay, error: outcome.message }, 'InfluxDB write failed, retrying');
      await sleep(delay, signal);
    }
  }

  close(): void {
    this.agent?.destroy();
  }
}
