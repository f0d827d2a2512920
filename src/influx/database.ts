/**
 * Makes sure the write target exists before the first write: on InfluxDB 1.x the database is
 * created if missing (`CREATE DATABASE` is idempotent there); on 2.x+ the bucket must exist
 * already (creating buckets needs an all-access token we do not ask for), so a missing one is a
 * clear configuration error instead of a stream of 404s.
 */
import { escape } from '@influxdata/influxdb-client';
import { InfluxRejectedError, InfluxUnavailableError } from './errors.js';
import type { WriteApiVersion } from './api-detect.js';
import { isRetryableStatus } from '../base/retry.js';

export interface DatabaseOptions {
  url: string;
  api: WriteApiVersion;
  /** database (1.x) or bucket (2.x+) */
  bucket: string;
  org?: string;
  /** authorization headers of the installation */
  headers?: Record<string, string>;
  fetch?: typeof fetch;
  signal?: AbortSignal;
  /** EXPEED_RAW_RETENTION: the default RP's duration (1.x); refused on 2.x+ */
  rawRetentionMs?: number;
  /** EXPEED_HOURLY_RETENTION: the duration of HOURLY_RP (1.x); refused on 2.x+ */
  hourlyRetentionMs?: number;
}

/** Where rollups live when raw rows (or hourly rollups) expire (1.x): an RP without duration, not the default. */
export const ROLLUP_RP = 'rollups_forever';
/** Where hourly rollups live with EXPEED_HOURLY_RETENTION (1.x): an RP of that duration, not the default. */
export const HOURLY_RP = 'rollups_hourly';

/** The RPs rollups are written into: undefined = the database's default RP. */
export function rollupRps(o: { rawRetentionMs?: number; hourlyRetentionMs?: number }): {
  hourly?: string;
  daily?: string;
} {
  const forever = o.rawRetentionMs === undefined && o.hourlyRetentionMs === undefined ? undefined : ROLLUP_RP;
  return { hourly: o.hourlyRetentionMs === undefined ? forever : HOURLY_RP, daily: forever };
}

async function call(
  options: DatabaseOptions,
  path: string,
  init: RequestInit,
): Promise<{ status: number; text: string }> {
  const http = options.fetch ?? fetch;
  let res: Response;
  try {
    res = await http(`${options.url}${path}`, {
      ...init,
      headers: { ...options.headers, ...(init.headers as Record<string, string>) },
      signal: options.signal,
    });
  } catch (err) {
    throw new InfluxUnavailableError(
      `InfluxDB at ${options.url} did not answer: ${(err as Error).message}`,
      undefined,
      { cause: err },
    );
  }
  const text = await res.text().catch(() => '');
  if (isRetryableStatus(res.status)) {
    throw new InfluxUnavailableError(
      `InfluxDB at ${options.url} answered ${path.split('?')[0]} with HTTP ${res.status}: ${text.slice(0, 200)}`,
    );
  }
  return { status: res.status, text };
}

function influxqlError(text: string): string | undefined {
  try {
    const body = JSON.parse(text) as { error?: string; results?: Array<{ error?: string }> };
    return body.error ?? body.results?.find((r) => r.error)?.error;
  } catch {
    return text.slice(0, 200) || undefined;
  }
}

async function ensureV1(options: DatabaseOptions): Promise<void> {
  const db = options.bucket;
  const query = (q: string) =>
    call(options, '/query', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ q }).toString(),
    });
  const created = await query(`CREATE DATABASE ${escape.quoted(db)}`);
  const createError =
    created.status === 200 ? influxqlError(created.text) : (influxqlError(created.text) ?? `HTTP ${created.status}`);
  if (!createError) return ensureRetention(options, query);
  // a user without admin rights cannot create databases, but may write to an existing one
  const shown = await query('SHOW DATABASES');
  if (shown.status === 200 && !influxqlError(shown.text)) {
    const body = JSON.parse(shown.text) as { results?: Array<{ series?: Array<{ values?: string[][] }> }> };
    const names = body.results?.[0]?.series?.[0]?.values?.map((v) => v[0]) ?? [];
    if (names.includes(db)) return ensureRetention(options, query);
  }
  throw new InfluxRejectedError(
    `InfluxDB database "${db}" does not exist and could not be created: ${createError}`,
    created.status,
    'request',
  );
}

type Query = (q: string) => Promise<{ status: number; text: string }>;

/** InfluxDB's own default shard group duration for a retention (a shard must not outlast it). */
function shardDuration(retentionMs: number): string {
  const DAY = 86_400_000;
  return retentionMs < 2 * DAY ? '1h' : retentionMs <= 180 * DAY ? '1d' : '7d';
}

/**
 * With EXPEED_RAW_RETENTION on 1.x: the default RP (where raw rows are written and read
 * unqualified) gets the retention as its duration. With it or EXPEED_HOURLY_RETENTION,
 * `rollups_forever` (no duration) holds the daily rollups (and the hourly ones without an hourly
 * retention); with EXPEED_HOURLY_RETENTION, `rollups_hourly` of that duration holds the hourly
 * ones. Every statement is idempotent, so this runs at every start and follows a changed value.
 */
async function ensureRetention(options: DatabaseOptions, query: Query): Promise<void> {
  const { rawRetentionMs: raw, hourlyRetentionMs: hourly } = options;
  if (raw === undefined && hourly === undefined) return;
  const db = escape.quoted(options.bucket);
  const variable = raw === undefined ? 'EXPEED_HOURLY_RETENTION' : 'EXPEED_RAW_RETENTION';
  const run = async (q: string) => {
    const res = await query(q);
    const error = res.status === 200 ? influxqlError(res.text) : (influxqlError(res.text) ?? `HTTP ${res.status}`);
    if (error)
      throw new InfluxRejectedError(
        `${variable}: InfluxDB refused "${q}" (the user needs admin rights): ${error}`,
        res.status,
        'request',
      );
    return res.text;
  };
  const shown = JSON.parse(await run(`SHOW RETENTION POLICIES ON ${db}`)) as {
    results?: Array<{ series?: Array<{ columns: string[]; values: unknown[][] }> }>;
  };
  const series = shown.results?.[0]?.series?.[0];
  const rows = (series?.values ?? []).map((v) => Object.fromEntries(series!.columns.map((c, i) => [c, v[i]])));
  const dflt = rows.find((r) => r.default === true)?.name;
  if (typeof dflt !== 'string' || dflt === ROLLUP_RP || dflt === HOURLY_RP) {
    throw new InfluxRejectedError(
      `${variable}: database "${options.bucket}" has no usable default retention policy (found ${String(dflt)})`,
      undefined,
      'request',
    );
  }
  const rollups = rows.find((r) => r.name === ROLLUP_RP);
  if (!rollups) await run(`CREATE RETENTION POLICY ${escape.quoted(ROLLUP_RP)} ON ${db} DURATION INF REPLICATION 1`);
  else if (rollups.duration !== '0s')
    await run(`ALTER RETENTION POLICY ${escape.quoted(ROLLUP_RP)} ON ${db} DURATION INF`);
  if (hourly !== undefined) {
    const exists = rows.some((r) => r.name === HOURLY_RP);
    const spec = `${escape.quoted(HOURLY_RP)} ON ${db} DURATION ${Math.round(hourly / 1000)}s`;
    await run(
      exists
        ? `ALTER RETENTION POLICY ${spec} SHARD DURATION ${shardDuration(hourly)}`
        : `CREATE RETENTION POLICY ${spec} REPLICATION 1 SHARD DURATION ${shardDuration(hourly)}`,
    );
  }
  if (raw !== undefined)
    await run(
      `ALTER RETENTION POLICY ${escape.quoted(dflt)} ON ${db} DURATION ${Math.round(raw / 1000)}s SHARD DURATION ${shardDuration(raw)}`,
    );
}

async function ensureV2(options: DatabaseOptions): Promise<void> {
  if (options.hourlyRetentionMs !== undefined) {
    throw new InfluxRejectedError(
      'EXPEED_HOURLY_RETENTION works on InfluxDB 1.x only; on 2.x/3.x unset it (the hourly and daily rollups share INFLUX_BUCKET; see docs/rollups.md)',
      undefined,
      'request',
    );
  }
  if (options.rawRetentionMs !== undefined) {
    // one bucket holds raw rows and rollups: its retention would expire the rollups too
    throw new InfluxRejectedError(
      'EXPEED_RAW_RETENTION works on InfluxDB 1.x only; on 2.x/3.x unset it (raw rows and rollups share INFLUX_BUCKET, so a bucket retention would expire the rollups too; see docs/rollups.md)',
      undefined,
      'request',
    );
  }
  const params = new URLSearchParams({ name: options.bucket });
  if (options.org) params.set('org', options.org);
  const res = await call(options, `/api/v2/buckets?${params}`, { method: 'GET' });
  if (res.status === 401 || res.status === 403) {
    throw new InfluxRejectedError(
      `InfluxDB refused the token (HTTP ${res.status}) when looking up bucket "${options.bucket}"; check INFLUX_TOKEN and INFLUX_ORG`,
      res.status,
      'request',
    );
  }
  if (res.status !== 200) {
    // InfluxDB 3 and other servers that accept /api/v2/write have no bucket API: the write decides
    return;
  }
  let buckets: unknown[] = [];
  try {
    buckets = (JSON.parse(res.text) as { buckets?: unknown[] }).buckets ?? [];
  } catch {
    return;
  }
  if (buckets.length === 0) {
    throw new InfluxRejectedError(
      `InfluxDB bucket "${options.bucket}" does not exist${options.org ? ` in org "${options.org}"` : ''}; create it or set INFLUX_BUCKET`,
      404,
      'request',
    );
  }
}

export async function ensureDatabase(options: DatabaseOptions): Promise<void> {
  if (options.api === 'v1') await ensureV1(options);
  else await ensureV2(options);
}
