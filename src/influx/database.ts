/**
 * Makes sure the write target exists before the first write: on InfluxDB 1.x the database is
 * created if missing (`CREATE DATABASE` is idempotent there); on 2.x+ the bucket must exist
 * already (creating buckets needs an all-access token we do not ask for), so a missing one is a
 * clear configuration error instead of a stream of 404s.
 */
import { escape } from '@influxdata/influxdb-client';
import { InfluxRejectedError, InfluxUnavailableError } from './errors.js';
import type { WriteApiVersion } from './api-detect.js';

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
}

async function call(options: DatabaseOptions, path: string, init: RequestInit): Promise<{ status: number; text: string }> {
  const http = options.fetch ?? fetch;
  let res: Response;
  try {
    res = await http(`${options.url}${path}`, { ...init, headers: { ...options.headers, ...(init.headers as Record<string, string>) }, signal: options.signal });
  } catch (err) {
    throw new InfluxUnavailableError(`InfluxDB at ${options.url} did not answer: ${(err as Error).message}`, undefined, { cause: err });
  }
  const text = await res.text().catch(() => '');
  if (res.status >= 500 || res.status === 429) {
    throw new InfluxUnavailableError(`InfluxDB at ${options.url} answered ${path.split('?')[0]} with HTTP ${res.status}: ${text.slice(0, 200)}`);
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
  const createError = created.status === 200 ? influxqlError(created.text) : influxqlError(created.text) ?? `HTTP ${created.status}`;
  if (!createError) return;
  // a user without admin rights cannot create databases, but may write to an existing one
  const shown = await query('SHOW DATABASES');
  if (shown.status === 200 && !influxqlError(shown.text)) {
    const body = JSON.parse(shown.text) as { results?: Array<{ series?: Array<{ values?: string[][] }> }> };
    const names = body.results?.[0]?.series?.[0]?.values?.map((v) => v[0]) ?? [];
    if (names.includes(db)) return;
  }
  throw new InfluxRejectedError(`InfluxDB database "${db}" does not exist and could not be created: ${createError}`, created.status, 'request');
}

async function ensureV2(options: DatabaseOptions): Promise<void> {
  const params = new URLSearchParams({ name: options.bucket });
  if (options.org) params.set('org', options.org);
  const res = await call(options, `/api/v2/buckets?${params}`, { method: 'GET' });
  if (res.status === 401 || res.status === 403) {
    throw new InfluxRejectedError(`InfluxDB refused the token (HTTP ${res.status}) when looking up bucket "${options.bucket}"; check INFLUX_TOKEN and INFLUX_ORG`, res.status, 'request');
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
