/// <reference lib="es2024.string" />
/**
 * The Expeed platform client: one typed method per endpoint (SPEC.md), results read into our
 * types, result codes mapped per endpoint to typed errors. Device calls take their access token
 * from a TokenSource (the shared token budget); on code 1 the client drops that token, gets a fresh
 * one once and retries once (the budget pauses token calls instead when the token had never worked).
 * Unknown result codes are retried with backoff a bounded number of times, except on device_setting,
 * which is never sent twice once it may have reached the platform. The token endpoint itself is a
 * separate function used only by the budget, so nothing else can spend token calls.
 */
import type { Config } from '../base/config.js';
import type { CallOptions, DataRow, DeviceRef, DeviceStatus, HistoryPage, HistoryQuery, PlatformClient, TokenSource, UnreadableRow } from './api.js';
import {
  ENDPOINT,
  InvalidParametersError,
  PlatformError,
  PlatformProtocolError,
  PlatformUnavailableError,
  SettingOutcomeUnknownError,
  TokenExpiredError,
  UnknownResultCodeError,
  resultCodeError,
  RESULT_CODE,
  type Endpoint,
} from './errors.js';
import { backoffDelay, sleep } from '../base/backoff.js';
import { DEFAULT_HTTP_OPTIONS, platformBackoff, requestJson, toInteger, type HttpOptions, type JsonRequest, type VendorAnswer } from './http.js';
import { DEFAULT_TIMEZONE, formatPlatformTime, parsePlatformTime } from './timestamp.js';

export interface PlatformClientOptions extends HttpOptions {
  /** e.g. https://api.iot-expeed.com (paths start with /v1) */
  baseUrl: string;
  tokens: TokenSource;
  /** zone of the platform's timestamps (default Asia/Shanghai) */
  timezone: string;
  /** answers with an undocumented result code retried (with backoff) before the call fails (EXPEED_UNKNOWN_CODE_RETRIES, default 3) */
  unknownCodeRetries: number;
  /** device_setting body: the bare settings (the vendor example) or {"data": settings} (its parameter table) */
  settingBody: SettingBody;
}

export type SettingBody = 'bare' | 'data';

export const DEFAULT_PLATFORM_CLIENT_OPTIONS: Omit<PlatformClientOptions, 'baseUrl' | 'tokens'> = {
  ...DEFAULT_HTTP_OPTIONS,
  timezone: DEFAULT_TIMEZONE,
  unknownCodeRetries: 3,
  settingBody: 'bare',
};

/** The platform's page size limits (SPEC §2.3). */
export const HISTORY_LIMIT = { min: 1, max: 6000 } as const;

export class ExpeedClient implements PlatformClient {
  private readonly options: PlatformClientOptions;
  private readonly baseUrl: string;
  /** aborts calls (and their backoff waits) still running when the client is closed */
  private readonly closing = new AbortController();

  constructor(options: Partial<PlatformClientOptions> & Pick<PlatformClientOptions, 'baseUrl' | 'tokens'>) {
    this.options = { ...DEFAULT_PLATFORM_CLIENT_OPTIONS, ...options };
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
  }

  async deviceStatus(device: DeviceRef, options: CallOptions = {}): Promise<DeviceStatus> {
    const endpoint = ENDPOINT.deviceStatus;
    const answer = await this.deviceCall(endpoint, device, { path: `/v1/devices/device_status/${segment(device.id)}` }, options);
    const raw = toInteger(answer.body.device_status);
    if (raw === undefined) throw missing(endpoint, 'device_status', answer.body.device_status);
    return { online: raw === 1, raw };
  }

  async currentDatapoints(
    device: DeviceRef,
    ids?: string[],
    options: CallOptions = {},
  ): Promise<{ row: DataRow | undefined; unreadable: UnreadableRow[] }> {
    const endpoint = ENDPOINT.currentDatapoints;
    const query = `id=${ids && ids.length > 0 ? idList(endpoint, ids) : 'all'}`;
    const answer = await this.deviceCall(endpoint, device, { path: `/v1/devices/${segment(device.id)}/currentDatapoints?${query}` }, options);
    const data = answer.body.data;
    if (data === undefined) throw missing(endpoint, 'data', data);
    // a device that never reported anything may come back with null or {}
    if (data === null || (typeof data === 'object' && !Array.isArray(data) && Object.keys(data).length === 0)) {
      return { row: undefined, unreadable: [] };
    }
    const rows: DataRow[] = [];
    const unreadable: UnreadableRow[] = [];
    readRow(data, this.options.timezone, rows, unreadable);
    return { row: rows[0], unreadable };
  }

  async history(device: DeviceRef, query: HistoryQuery, options: CallOptions = {}): Promise<HistoryPage> {
    const endpoint = ENDPOINT.history;
    const answer = await this.deviceCall(endpoint, device, { path: `/v1/devices/${segment(device.id)}/datapoints?${this.historyQuery(query)}` }, options);
    const { data, cursor } = answer.body;
    if (data === undefined) throw missing(endpoint, 'data', data);
    if (data !== null && !Array.isArray(data)) throw new PlatformProtocolError(endpoint, `"data" is not a list (${describe(data)})`);
    const rows: DataRow[] = [];
    const unreadable: UnreadableRow[] = [];
    for (const raw of data ?? []) readRow(raw, this.options.timezone, rows, unreadable);
    const page: HistoryPage = { rows, unreadable };
    if (cursor !== undefined && cursor !== null && cursor !== '') {
      const c = toInteger(cursor);
      if (c === undefined) throw new PlatformProtocolError(endpoint, `"cursor" is not epoch milliseconds (${describe(cursor)})`);
      page.cursor = c;
    }
    return page;
  }

  async deviceSetting(device: DeviceRef, settings: Record<string, unknown>, options: CallOptions = {}): Promise<{ messageId: string }> {
    const endpoint = ENDPOINT.deviceSetting;
    if (settings === null || typeof settings !== 'object' || Array.isArray(settings) || Object.keys(settings).length === 0) {
      throw new InvalidParametersError(endpoint, 'request', undefined, undefined, 'settings must be a non-empty object such as {"temp":25}');
    }
    const body = JSON.stringify(this.options.settingBody === 'data' ? { data: settings } : settings);
    try {
      // not idempotent: sent again only after code 1 (refused, certainly not applied) or when it never left
      const answer = await this.deviceCall(endpoint, device, { path: `/v1/devices/${segment(device.id)}/device_setting`, method: 'POST', body, idempotent: false }, options);
      const id = answer.body.message_id;
      if ((typeof id !== 'string' || id === '') && typeof id !== 'number') throw missing(endpoint, 'message_id', id);
      return { messageId: String(id) };
    } catch (err) {
      if (outcomeUnknown(err)) throw new SettingOutcomeUnknownError(device.id, err);
      throw err;
    }
  }

  /** Nothing is pooled; close() stops calls still waiting (for an answer or a backoff). */
  async close(): Promise<void> {
    this.closing.abort(new Error('platform client closed'));
  }

  private historyQuery(q: HistoryQuery): string {
    const endpoint = ENDPOINT.history;
    const parts: string[] = [];
    if (q.ids && q.ids.length > 0) parts.push(`id=${idList(endpoint, q.ids)}`);
    if ((q.start === undefined) !== (q.end === undefined)) {
      throw new InvalidParametersError(endpoint, 'request', undefined, undefined, 'start and end must be given together');
    }
    if (q.start !== undefined && q.end !== undefined) {
      if (q.start > q.end) throw new InvalidParametersError(endpoint, 'request', undefined, undefined, `start (${q.start}) is after end (${q.end})`);
      parts.push(`start=${formatPlatformTime(q.start, this.options.timezone)}`, `end=${formatPlatformTime(q.end, this.options.timezone)}`);
    }
    if (q.limit !== undefined) {
      if (!Number.isInteger(q.limit) || q.limit < HISTORY_LIMIT.min || q.limit > HISTORY_LIMIT.max) {
        throw new InvalidParametersError(endpoint, 'request', undefined, undefined, `limit must be a whole number from 1 to 6000, got ${q.limit}`);
      }
      parts.push(`limit=${q.limit}`);
    }
    if (q.cursor !== undefined) {
      if (!Number.isInteger(q.cursor)) throw new InvalidParametersError(endpoint, 'request', undefined, undefined, `cursor must be epoch ms, got ${q.cursor}`);
      parts.push(`cursor=${q.cursor}`);
    }
    if (q.first !== undefined) parts.push(`first=${q.first}`);
    return parts.join('&');
  }

  /** Code 1: drop the token that failed (only if still cached), take a fresh one, retry once. */
  private async deviceCall(
    endpoint: Endpoint,
    device: DeviceRef,
    req: { path: string } & Pick<JsonRequest, 'method' | 'body' | 'idempotent'>,
    options: CallOptions,
  ): Promise<VendorAnswer> {
    checkDevice(endpoint, device);
    const { tokens } = this.options;
    const signal = options.signal ? AbortSignal.any([options.signal, this.closing.signal]) : this.closing.signal;
    const idempotent = req.idempotent ?? (req.method ?? 'GET') === 'GET';
    let token = await tokens.get({ useReserve: options.useReserve });
    let refreshed = false;
    for (let unknown = 0; ; ) {
      const answer = await requestJson(
        { endpoint, url: this.baseUrl + req.path, method: req.method, body: req.body, idempotent, signal, headers: { access_token: token, device_key: device.key } },
        this.options,
      );
      if (answer.code === RESULT_CODE.ok) {
        // a key the platform accepted is a secret from now on (registered keys are known from the
        // start); a refused one is not learned: pushes naming invented ids with invented keys must
        // not grow the scrubber's pattern without bound (it is matched against every log line)
        this.options.scrubber?.add(device.key);
        await tokens.accepted?.(token);
        return answer;
      }
      if (answer.code === RESULT_CODE.tokenOrCredentials) {
        // the budget throws a retry-later error here when the token had never worked
        if (tokens.rejected) await tokens.rejected(token, answer.message);
        // (the fresh token had worked elsewhere and was revoked again: a later attempt may work)
        if (refreshed) throw new TokenExpiredError(endpoint, answer.message, { afterRefresh: true, retryable: tokens.rejected !== undefined });
        if (!tokens.rejected) await tokens.invalidate(token);
        token = await tokens.get({ useReserve: options.useReserve });
        refreshed = true;
        continue;
      }
      const err = resultCodeError(endpoint, answer.code, answer.message, device.id);
      // the vendor's code lists end in "…": an unknown code may pass, but a setting is not sent twice
      if (!(err instanceof UnknownResultCodeError)) throw err;
      if (!idempotent || unknown >= this.options.unknownCodeRetries) throw new UnknownResultCodeError(endpoint, answer.code, answer.message, unknown + 1);
      const delayMs = backoffDelay(unknown, platformBackoff(this.options));
      unknown++;
      await sleep(delayMs, signal);
    }
  }
}

/** The client's options as the service and the CLI wire them from the configuration. */
export function clientOptionsFromConfig(config: Config): Pick<PlatformClientOptions, 'baseUrl' | 'timezone' | 'timeoutMs' | 'unknownCodeRetries' | 'settingBody'> {
  return {
    baseUrl: config.baseUrl,
    timezone: config.timezone,
    timeoutMs: config.requestTimeoutMs,
    unknownCodeRetries: config.unknownCodeRetries,
    settingBody: config.settingBody,
  };
}

export interface TokenGrant {
  accessToken: string;
  /** seconds, as the platform sent it */
  expiresIn: number;
}

/** The token call. Only the token budget calls it: every call counts against the daily limit. */
export type TokenEndpoint = (signal?: AbortSignal) => Promise<TokenGrant>;

export interface TokenEndpointOptions extends Pick<HttpOptions, 'timeoutMs' | 'fetch' | 'scrubber'> {
  baseUrl: string;
  platformKey: string;
  secretKey: string;
}

/**
 * One attempt, never retried here: whether another attempt is worth a token call is the budget's
 * decision. Code 1 becomes CredentialsRejectedError. The URL (it holds the keys) never appears in
 * an error.
 */
export function createTokenEndpoint(options: Partial<TokenEndpointOptions> & Pick<TokenEndpointOptions, 'baseUrl' | 'platformKey' | 'secretKey'>): TokenEndpoint {
  const http: HttpOptions = { ...DEFAULT_HTTP_OPTIONS, ...options, retries: 0 };
  http.scrubber?.add(options.platformKey);
  http.scrubber?.add(options.secretKey);
  const url = `${options.baseUrl.replace(/\/+$/, '')}/v1/platform/token?platform_key=${encodeURIComponent(options.platformKey)}&secret_key=${encodeURIComponent(options.secretKey)}`;
  return async (signal) => {
    const endpoint = ENDPOINT.token;
    const answer = await requestJson({ endpoint, url, signal, retries: 0 }, http);
    if (answer.code !== RESULT_CODE.ok) throw resultCodeError(endpoint, answer.code, answer.message);
    const token = answer.body.access_token;
    if (typeof token !== 'string' || token.trim() === '') throw missing(endpoint, 'access_token', token === undefined ? undefined : '(not a non-empty string)');
    http.scrubber?.add(token);
    const expiresIn = toInteger(answer.body.expires_in);
    if (expiresIn === undefined || expiresIn <= 0) throw missing(endpoint, 'expires_in', answer.body.expires_in);
    return { accessToken: token, expiresIn };
  };
}

/** A setting that may have reached the platform and was neither refused nor confirmed. */
function outcomeUnknown(err: unknown): err is PlatformError {
  if (err instanceof PlatformUnavailableError) return err.mayHaveReached;
  // an unreadable 4xx answer (a proxy's "not found") refused the request; anything else may have been taken
  if (err instanceof PlatformProtocolError) return err.status === undefined || err.status < 400 || err.status >= 500;
  return err instanceof UnknownResultCodeError;
}

/** A path segment: Chinese characters, spaces and "/" in device ids must not change the path. */
function segment(id: string): string {
  return encodeURIComponent(id);
}

function idList(endpoint: Endpoint, ids: string[]): string {
  for (const id of ids) {
    if (typeof id !== 'string' || id === '' || id.includes(',')) {
      throw new InvalidParametersError(endpoint, 'request', undefined, undefined, `datapoint name ${JSON.stringify(id)} cannot be sent (empty or contains ",")`);
    }
  }
  // commas stay literal: they separate names in the vendor's syntax
  return ids.map(encodeURIComponent).join(',');
}

function checkDevice(endpoint: Endpoint, device: DeviceRef): void {
  if (typeof device?.id !== 'string' || device.id === '') {
    throw new InvalidParametersError(endpoint, 'request', undefined, undefined, 'device id must be a non-empty string');
  }
  // header values are bytes: a key outside Latin-1 (or with control characters) cannot be sent
  if (typeof device.key !== 'string' || device.key === '' || /[^\t\x20-\x7e\x80-\xff]/.test(device.key)) {
    throw new InvalidParametersError(endpoint, 'request', undefined, undefined, `the key of device "${device.id}" is empty or holds characters an HTTP header cannot carry`);
  }
}

function missing(endpoint: Endpoint, field: string, value: unknown): PlatformProtocolError {
  return new PlatformProtocolError(endpoint, value === undefined ? `missing "${field}"` : `"${field}" is invalid (${describe(value)})`);
}

function describe(value: unknown): string {
  const s = JSON.stringify(value) ?? String(value);
  return s.length > 80 ? `${s.slice(0, 80)}…` : s;
}

/**
 * Reads one vendor row `{timestamp, name: value...}`; what cannot be read is kept with its reason.
 * Names and string values must be well-formed Unicode: a lone UTF-16 surrogate (JSON can carry one
 * as an escape) would be stored as U+FFFD, merging distinct names or values into one.
 */
/**
 * The prototype of every row's values: empty, itself without a prototype. `Object.create(null)`
 * would do the same for names, but V8 keeps such objects as dictionaries (slower to read, larger,
 * more GC on 6000-row pages); an object over an empty prototype keeps fast properties.
 */
const ROW_VALUES: object = Object.freeze(Object.create(null));

export function readRow(raw: unknown, timezone: string, rows: DataRow[], unreadable: UnreadableRow[]): void {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    unreadable.push({ reason: 'row is not an object', raw });
    return;
  }
  const record = raw as Record<string, unknown>;
  let time: number;
  try {
    time = parsePlatformTime(record.timestamp, timezone);
  } catch (err) {
    unreadable.push({ reason: (err as Error).message, raw });
    return;
  }
  // no Object.prototype in the chain: datapoints named "__proto__" or "toString" are plain values
  const values: Record<string, unknown> = Object.create(ROW_VALUES);
  for (const key of Object.keys(record)) {
    if (key === 'timestamp') continue;
    const value = record[key];
    if (!key.isWellFormed() || (typeof value === 'string' && !value.isWellFormed())) {
      unreadable.push({ reason: `datapoint ${describe(key)} ${key.isWellFormed() ? `has the value ${describe(value)}, which is` : 'has a name that is'} not well-formed Unicode (a lone UTF-16 surrogate)`, raw });
      return;
    }
    values[key] = value;
  }
  rows.push({ time, values });
}
