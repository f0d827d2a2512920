/**
 * The writer's connection to InfluxDB: which write API the server speaks (asked on first use when
 * `api` is 'auto'), the 1.x database / 2.x+ bucket prepared, and the WriteRequest every write of
 * the writer then shares.
 */
import type { InfluxApi } from '../base/config.js';
import type { Logger } from '../base/log.js';
import { detectInfluxApi, type WriteApiVersion } from './api-detect.js';
import { ensureDatabase } from './database.js';
import type { RetryPolicy } from './retry-policy.js';
import { authHeaders, WriteRequest, type WriteRequestOptions } from './write-request.js';

export interface InfluxConnectionOptions {
  /** default http://127.0.0.1:8086 */
  url: string;
  /** default 'auto': asks the server on first write */
  api: InfluxApi;
  /** bucket (2.x+) or database (1.x), default `expeed` */
  bucket: string;
  org?: string;
  /** 2.x+ token, or `user:password` for 1.x with authentication */
  token?: string;
  /** 1.x retention policy written into (rollups when raw rows expire); default the database's default */
  rp?: string;
  /** EXPEED_RAW_RETENTION, applied where the database is ensured */
  rawRetentionMs?: number;
  /** EXPEED_HOURLY_RETENTION, applied where the database is ensured */
  hourlyRetentionMs?: number;
  retry: RetryPolicy;
  /** per-request timeout, default 30 s */
  timeoutMs: number;
  /** gzip bodies above this many bytes; default 0 = off */
  gzipThreshold: number;
  /** create the 1.x database / check the 2.x bucket before the first write, default true */
  ensureDatabase: boolean;
  logger?: Logger;
  /** replaces the client library's transport for writes */
  transport?: WriteRequestOptions['transport'];
  /** used for API detection and the database check */
  fetch?: typeof fetch;
}

export interface InfluxConnection {
  api: WriteApiVersion;
  request: WriteRequest;
}

/**
 * Detects the API and prepares the database. Not tied to any caller's AbortSignal (the connection
 * outlives the write that opened it); each step has the request timeout. A 1.x database dropped
 * later is created again by the request when a write finds it missing.
 */
export async function openInfluxConnection(o: InfluxConnectionOptions): Promise<InfluxConnection> {
  const signal = AbortSignal.timeout(o.timeoutMs);
  const api =
    o.api === 'auto'
      ? (
          await detectInfluxApi({
            url: o.url,
            fetch: o.fetch,
            signal,
            headers: authHeaders({ api: 'v2', token: o.token?.includes(':') ? undefined : o.token }),
          })
        ).api
      : o.api;
  const target = { url: o.url, api, bucket: o.bucket, org: o.org, token: o.token, rp: o.rp };
  const prepare = () =>
    ensureDatabase({
      ...target,
      rawRetentionMs: o.rawRetentionMs,
      hourlyRetentionMs: o.hourlyRetentionMs,
      headers: authHeaders(target),
      fetch: o.fetch,
      signal: AbortSignal.timeout(o.timeoutMs),
    });
  if (o.ensureDatabase) await prepare();
  const request = new WriteRequest(target, {
    retry: o.retry,
    timeoutMs: o.timeoutMs,
    gzipThreshold: o.gzipThreshold,
    transport: o.transport,
    logger: o.logger,
    onMissingDatabase: api === 'v1' && o.ensureDatabase ? prepare : undefined,
  });
  return { api, request };
}
