/**
 * InfluxQL reads (gap finding, status). InfluxQL over `/query` works on 1.x (database, optional
 * `user:password`) and on 2.x/Cloud through the DBRP mapping (the bucket as `db`, `Token` auth),
 * so one small helper serves both.
 */
import type { InfluxConfig } from '../base/config.js';
import { detectInfluxApi, type WriteApiVersion } from './api-detect.js';
import { InfluxRejectedError, InfluxUnavailableError } from './errors.js';
import { isRetryableStatus } from '../base/retry.js';

export interface InfluxSeries {
  name: string;
  tags?: Record<string, string>;
  columns: string[];
  values: unknown[][];
}

export interface InfluxQueryOptions extends Pick<InfluxConfig, 'url' | 'api' | 'bucket' | 'token'> {
  fetch?: typeof fetch;
  /** per request, ms (default 60 s) */
  timeoutMs?: number;
}

export interface InfluxQuery {
  /** the series of the first statement; times are epoch ms */
  series(q: string, signal?: AbortSignal): Promise<InfluxSeries[]>;
  /** rows of the first statement as objects keyed by column, tags merged in */
  rows(q: string, signal?: AbortSignal): Promise<Array<Record<string, unknown>>>;
  close(): Promise<void>;
}

/** Quotes a string literal for InfluxQL (`'it\'s'`). */
export function influxString(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** Quotes an identifier for InfluxQL (`"my ""db"""` is not valid; InfluxQL escapes with a backslash). */
export function influxIdent(value: string): string {
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/**
 * InfluxQL over HTTP. The API version is asked of the server once when `api` is `auto` (and again
 * after a failed probe); the returned methods are closures, so they can be handed on unbound.
 */
export function createInfluxQuery(options: InfluxQueryOptions): InfluxQuery {
  const http = options.fetch ?? fetch;
  const timeoutMs = options.timeoutMs ?? 60_000;
  let api: Promise<WriteApiVersion> | undefined;

  const resolveApi = (): Promise<WriteApiVersion> => {
    if (options.api !== 'auto') return Promise.resolve(options.api);
    api ??= detectInfluxApi({ url: options.url, fetch: http }).then(
      (d) => d.api,
      (err) => {
        api = undefined; // ask again next time: the server may just have been down
        throw err;
      },
    );
    return api;
  };

  async function series(q: string, signal?: AbortSignal): Promise<InfluxSeries[]> {
    const request = queryRequest(options, await resolveApi(), q);
    const timeout = AbortSignal.timeout(timeoutMs);
    let res: Response;
    try {
      // POST keeps the query (and 1.x credentials) out of server access logs
      res = await http(`${options.url}/query`, {
        method: 'POST',
        ...request,
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      });
    } catch (err) {
      throw new InfluxUnavailableError(
        `InfluxDB at ${options.url} did not answer a query: ${(err as Error).message}`,
        undefined,
        { cause: err },
      );
    }
    return seriesOf(res, await res.text(), options.url, q);
  }

  return {
    series,
    async rows(q, signal) {
      const all = await series(q, signal);
      return all.flatMap((s) =>
        s.values.map((v) => ({ ...(s.tags ?? {}), ...Object.fromEntries(s.columns.map((c, i) => [c, v[i]])) })),
      );
    },
    async close() {
      // stateless: fetch keeps no connection of ours open
    },
  };
}

/** The form-encoded body and headers of a query: `Token` auth on v2, `u`/`p` parameters (`user:password`) on 1.x. */
function queryRequest(
  options: Pick<InfluxQueryOptions, 'bucket' | 'token'>,
  version: WriteApiVersion,
  q: string,
): { headers: Record<string, string>; body: string } {
  const params = new URLSearchParams({ db: options.bucket, q, epoch: 'ms' });
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
  if (options.token) {
    if (version === 'v2') headers.authorization = `Token ${options.token}`;
    else {
      const i = options.token.indexOf(':');
      params.set('u', i === -1 ? options.token : options.token.slice(0, i));
      params.set('p', i === -1 ? '' : options.token.slice(i + 1));
    }
  }
  return { headers, body: params.toString() };
}

/**
 * The series of the first statement of an answer; a retryable status is InfluxUnavailableError,
 * any other refusal (or an answer that is not JSON) InfluxRejectedError.
 */
function seriesOf(res: Response, text: string, url: string, q: string): InfluxSeries[] {
  if (isRetryableStatus(res.status))
    throw new InfluxUnavailableError(
      `InfluxDB at ${url} answered a query with HTTP ${res.status}: ${text.slice(0, 200)}`,
    );
  let body: { results?: Array<{ series?: InfluxSeries[]; error?: string }>; error?: string };
  try {
    body = JSON.parse(text);
  } catch {
    throw new InfluxRejectedError(
      `InfluxDB at ${url} answered a query with HTTP ${res.status} and no JSON: ${text.slice(0, 200)}`,
      res.status,
      'request',
    );
  }
  const error = body.error ?? body.results?.[0]?.error;
  if (!res.ok || error) {
    throw new InfluxRejectedError(
      `InfluxDB refused the query (HTTP ${res.status}): ${error ?? text.slice(0, 200)}; query: ${q}`,
      res.status,
      'request',
    );
  }
  return body.results?.[0]?.series ?? [];
}
