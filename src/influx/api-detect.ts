/**
 * `INFLUX_API=auto`: asks the server which write API it speaks. InfluxDB 1.x answers `/ping` with
 * `X-Influxdb-Version: 1.x`; 2.x and 3.x answer with their own version there, and Cloud (whose
 * `/ping` may carry no usable version) identifies itself on `/health` as `{"name":"influxdb"}`.
 */
import { InfluxRejectedError, InfluxUnavailableError } from './errors.js';
import { isRetryableStatus } from '../base/retry.js';

export type WriteApiVersion = 'v1' | 'v2';

export interface ApiDetectOptions {
  url: string;
  /** extra headers, e.g. authorization for servers that protect /ping */
  headers?: Record<string, string>;
  fetch?: typeof fetch;
  signal?: AbortSignal;
}

export interface DetectedApi {
  api: WriteApiVersion;
  /** the version the server reported, when it did */
  version?: string;
}

/** Maps a reported version (`1.6.7~rc0`, `v2.7.4`, `3.0.1`) to the write API it speaks. */
export function apiOfVersion(version: string | null | undefined): WriteApiVersion | undefined {
  const m = /^v?(\d+)\./.exec(version?.trim() ?? '');
  if (!m) return undefined;
  return Number(m[1]) <= 1 ? 'v1' : 'v2';
}

export async function detectInfluxApi(options: ApiDetectOptions): Promise<DetectedApi> {
  const http = options.fetch ?? fetch;
  const get = async (path: string): Promise<Response> => {
    try {
      return await http(`${options.url}${path}`, { headers: options.headers, signal: options.signal });
    } catch (err) {
      throw new InfluxUnavailableError(
        `InfluxDB at ${options.url} did not answer ${path}: ${(err as Error).message}`,
        undefined,
        { cause: err },
      );
    }
  };

  const ping = await get('/ping');
  await ping.arrayBuffer().catch(() => undefined);
  if (isRetryableStatus(ping.status)) {
    throw new InfluxUnavailableError(`InfluxDB at ${options.url} answered /ping with HTTP ${ping.status}`);
  }
  const version = ping.headers.get('x-influxdb-version') ?? undefined;
  const byPing = apiOfVersion(version);
  if (byPing) return { api: byPing, version };
  if (/cloud/i.test(ping.headers.get('x-influxdb-build') ?? '')) return { api: 'v2', version };

  const health = await get('/health');
  const text = await health.text().catch(() => '');
  if (health.ok) {
    try {
      const body = JSON.parse(text) as { name?: string; version?: string };
      if (body.name === 'influxdb') return { api: apiOfVersion(body.version) ?? 'v2', version: body.version };
    } catch {
      // not JSON: not an InfluxDB health answer
    }
  }
  throw new InfluxRejectedError(
    `cannot tell which write API the server at ${options.url} speaks (no InfluxDB version on /ping or /health); set INFLUX_API=v1 or INFLUX_API=v2`,
    undefined,
    'request',
  );
}
