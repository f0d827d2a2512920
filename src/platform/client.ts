/**
 * The Expeed platform client: one typed method per endpoint (SPEC.md), results read into our
 * types, result codes mapped per endpoint to typed errors. Device calls take their access token
 * from a TokenSource (the shared token budget); on code 1 the client drops that token, gets a fresh
 * one once and retries once (the budget pauses token calls instead when the token had never worked).
 * Unknown result codes are retried with backoff a bounded number of times, except on device_setting,
 * which is never sent twice once it may have reached the platform. Requests are built and checked
 * in requests.ts, answers read in answers.ts; the token call is token-endpoint.ts, used only by the
 * budget, so nothing else can spend token calls.
 */
import type { Config } from '../base/config.js';
import { describe, missing, readRow } from './answers.js';
import type {
  CallOptions,
  DataRow,
  DeviceRef,
  DeviceStatus,
  HistoryPage,
  HistoryQuery,
  PlatformClient,
  TokenSource,
  UnreadableRow,
} from './api.js';
import {
  ENDPOINT,
  PlatformError,
  PlatformProtocolError,
  PlatformUnavailableError,
  SettingOutcomeUnknownError,
  TokenExpiredError,
  UnknownResultCodeError,
  RESULT_CODE,
  type Endpoint,
} from './errors.js';
import { resultCodeError } from './result-code-errors.js';
import { backoffDelay, sleep } from '../base/backoff.js';
import {
  DEFAULT_HTTP_OPTIONS,
  platformBackoff,
  requestJson,
  toInteger,
  type HttpOptions,
  type JsonRequest,
  type VendorAnswer,
} from './platform-request.js';
import { checkDevice, historyQuery, idList, invalid, segment } from './requests.js';
import { DEFAULT_TIMEZONE } from './timestamp.js';
import { withDefaults } from '../base/options.js';

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

export class ExpeedClient implements PlatformClient {
  private readonly options: PlatformClientOptions;
  private readonly baseUrl: string;
  /** aborts calls (and their backoff waits) still running when the client is closed */
  private readonly closing = new AbortController();

  constructor(options: Partial<PlatformClientOptions> & Pick<PlatformClientOptions, 'baseUrl' | 'tokens'>) {
    this.options = withDefaults(DEFAULT_PLATFORM_CLIENT_OPTIONS, options);
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
  }

  async deviceStatus(device: DeviceRef, options: CallOptions = {}): Promise<DeviceStatus> {
    const endpoint = ENDPOINT.deviceStatus;
    const answer = await this.deviceCall(
      endpoint,
      device,
      { path: `/v1/devices/device_status/${segment(device.id)}` },
      options,
    );
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
    const answer = await this.deviceCall(
      endpoint,
      device,
      { path: `/v1/devices/${segment(device.id)}/currentDatapoints?${query}` },
      options,
    );
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
    const answer = await this.deviceCall(
      endpoint,
      device,
      { path: `/v1/devices/${segment(device.id)}/datapoints?${historyQuery(query, this.options.timezone)}` },
      options,
    );
    const { data, cursor } = answer.body;
    if (data === undefined) throw missing(endpoint, 'data', data);
    if (data !== null && !Array.isArray(data))
      throw new PlatformProtocolError(endpoint, `"data" is not a list (${describe(data)})`);
    const rows: DataRow[] = [];
    const unreadable: UnreadableRow[] = [];
    for (const raw of data ?? []) readRow(raw, this.options.timezone, rows, unreadable);
    const page: HistoryPage = { rows, unreadable };
    if (cursor !== undefined && cursor !== null && cursor !== '') {
      const c = toInteger(cursor);
      if (c === undefined)
        throw new PlatformProtocolError(endpoint, `"cursor" is not epoch milliseconds (${describe(cursor)})`);
      page.cursor = c;
    }
    return page;
  }

  async deviceSetting(
    device: DeviceRef,
    settings: Record<string, unknown>,
    options: CallOptions = {},
  ): Promise<{ messageId: string }> {
    const endpoint = ENDPOINT.deviceSetting;
    if (
      settings === null ||
      typeof settings !== 'object' ||
      Array.isArray(settings) ||
      Object.keys(settings).length === 0
    ) {
      throw invalid(endpoint, 'settings must be a non-empty object such as {"temp":25}');
    }
    const body = JSON.stringify(this.options.settingBody === 'data' ? { data: settings } : settings);
    try {
      // not idempotent: sent again only after code 1 (refused, certainly not applied) or when it never left
      const answer = await this.deviceCall(
        endpoint,
        device,
        { path: `/v1/devices/${segment(device.id)}/device_setting`, method: 'POST', body, idempotent: false },
        options,
      );
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
    for (let unknown = 0; ;) {
      const answer = await requestJson(
        {
          endpoint,
          url: this.baseUrl + req.path,
          method: req.method,
          body: req.body,
          idempotent,
          signal,
          headers: { access_token: token, device_key: device.key },
        },
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
        if (refreshed)
          throw new TokenExpiredError(endpoint, answer.message, {
            afterRefresh: true,
            retryable: tokens.rejected !== undefined,
          });
        if (!tokens.rejected) await tokens.invalidate(token);
        token = await tokens.get({ useReserve: options.useReserve });
        refreshed = true;
        continue;
      }
      const err = resultCodeError(endpoint, answer.code, answer.message, device.id);
      // the vendor's code lists end in "…": an unknown code may pass, but a setting is not sent twice
      if (!(err instanceof UnknownResultCodeError)) throw err;
      if (!idempotent || unknown >= this.options.unknownCodeRetries)
        throw new UnknownResultCodeError(endpoint, answer.code, answer.message, unknown + 1);
      const delayMs = backoffDelay(unknown, platformBackoff(this.options));
      unknown++;
      await sleep(delayMs, signal);
    }
  }
}

/** The client's options as the service and the CLI wire them from the configuration. */
export function clientOptionsFromConfig(
  config: Config,
): Pick<PlatformClientOptions, 'baseUrl' | 'timezone' | 'timeoutMs' | 'unknownCodeRetries' | 'settingBody'> {
  return {
    baseUrl: config.baseUrl,
    timezone: config.timezone,
    timeoutMs: config.requestTimeoutMs,
    unknownCodeRetries: config.unknownCodeRetries,
    settingBody: config.settingBody,
  };
}

/** A setting that may have reached the platform and was neither refused nor confirmed. */
function outcomeUnknown(err: unknown): err is PlatformError {
  if (err instanceof PlatformUnavailableError) return err.mayHaveReached;
  // an unreadable 4xx answer (a proxy's "not found") refused the request; anything else may have been taken
  if (err instanceof PlatformProtocolError) return err.status === undefined || err.status < 400 || err.status >= 500;
  return err instanceof UnknownResultCodeError;
}
