/**
 * The token, device_status, currentDatapoints and device_setting endpoints (history has its own
 * file). Each returns the vendor's JSON answer; anything the real API would reject is also
 * recorded as a violation so tests can assert the client never asked for it.
 */
import { randomBytes } from 'node:crypto';
import { CODE, MESSAGE } from './result-codes.js';
import { servedTime } from './served-times.js';
import { generatedEnd, violation, type Answer, type SimDeviceState, type SimRequest, type SimState } from './state.js';
import type { SimValue } from './types.js';

function fail(code: number, message: string): Answer {
  return { json: { result_code: code, result_message: message } };
}

function header(req: SimRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export function tokenEndpoint(state: SimState, req: SimRequest, withinLimit: boolean): Answer {
  if (!withinLimit) return fail(CODE.dailyLimit, MESSAGE.dailyLimit);
  const platformKey = req.query.get('platform_key');
  const secretKey = req.query.get('secret_key');
  if (platformKey === null || secretKey === null) {
    violation(state, 'token', `missing query parameter ${platformKey === null ? 'platform_key' : 'secret_key'}`);
    return fail(CODE.urlParams, MESSAGE.urlParams);
  }
  return { json: state.tokens.issue(platformKey, secretKey) };
}

/** Token, device and device_key checks common to every device call, in the platform's order. */
export function authorize(state: SimState, req: SimRequest, endpoint: string): SimDeviceState | Answer {
  const token = header(req, 'access_token');
  if (token === undefined || token === '') {
    violation(state, endpoint, 'missing header access_token');
    return fail(CODE.tokenOrAuth, MESSAGE.tokenExpired);
  }
  if (state.tokens.check(token) !== 'valid') return fail(CODE.tokenOrAuth, MESSAGE.tokenExpired);
  const dev = state.devices.get(req.deviceId ?? '');
  if (!dev) return fail(CODE.noDevice, MESSAGE.noDevice);
  const key = header(req, 'device_key');
  if (key === undefined || key === '') {
    violation(state, endpoint, 'missing header device_key');
    return fail(CODE.endpointSpecific, MESSAGE.badDeviceKey);
  }
  if (key !== dev.device.key) return fail(CODE.endpointSpecific, MESSAGE.badDeviceKey);
  return dev;
}

export function deviceStatusEndpoint(dev: SimDeviceState): Answer {
  return { json: { result_code: CODE.ok, device_status: dev.device.online ? 1 : 0, result_message: MESSAGE.ok } };
}

/** How far back current values are looked for: sparse rows carry every field at least every few rows. */
const CURRENT_SCAN_ROWS = 2000;

export function currentEndpoint(state: SimState, req: SimRequest, dev: SimDeviceState): Answer {
  const idParam = req.query.get('id');
  if (idParam === null || idParam.trim() === '') {
    violation(state, 'current', 'missing query parameter id (a list of datapoints, or "all")');
    return fail(CODE.urlParams, MESSAGE.urlParams);
  }
  const asked =
    idParam.trim() === 'all'
      ? undefined
      : new Set(
          idParam
            .split(',')
            .map((s) => s.trim())
            .filter(Boolean),
        );
  const values: Record<string, SimValue> = {};
  let latest: number | undefined;
  let scanned = 0;
  const want = asked ? asked.size : dev.device.fields.length;
  let found = 0;
  const now = state.now();
  dev.series.scan(-Infinity, now + 1, state.range.from, generatedEnd(state), false, (row) => {
    for (const [name, v] of Object.entries(row.values)) {
      if ((asked && !asked.has(name)) || name in values) continue;
      values[name] = v;
      latest ??= row.time;
      found++;
    }
    return ++scanned < CURRENT_SCAN_ROWS && found < want;
  });
  const data: Record<string, unknown> = {};
  if (latest !== undefined) {
    // the leading space of the vendor's example belongs to its documented form
    data.timestamp =
      state.timestampForm === 'documented'
        ? `${state.currentTimestampSpace ? ' ' : ''}${state.clock.format(latest)}`
        : servedTime(state.clock, state.timestampForm, latest);
  }
  Object.assign(data, values);
  return { json: { result_code: CODE.ok, result_message: MESSAGE.ok, data } };
}

export function settingEndpoint(state: SimState, req: SimRequest, dev: SimDeviceState): Answer {
  let settings: unknown;
  try {
    settings = JSON.parse(req.body);
  } catch {
    violation(state, 'setting', `body is not JSON: ${JSON.stringify(req.body.slice(0, 80))}`);
    return fail(CODE.bodyParams, MESSAGE.bodyParams);
  }
  if (
    settings === null ||
    typeof settings !== 'object' ||
    Array.isArray(settings) ||
    Object.keys(settings).length === 0
  ) {
    violation(state, 'setting', 'body must be a non-empty JSON object of settings');
    return fail(CODE.bodyParams, MESSAGE.bodyParams);
  }
  if (!dev.device.online) return fail(CODE.endpointSpecific, MESSAGE.offline);
  const messageId = randomBytes(8).toString('hex');
  const s = settings as Record<string, unknown>;
  state.stats.settings.push({ deviceId: dev.device.id, messageId, settings: s });
  const timer = setTimeout(() => {
    state.timers.delete(timer);
    let result: 0 | 1 | 'never';
    try {
      result = state.settingResult(dev.device.id, s);
    } catch (err) {
      state.logger?.warn({ messageId, err: (err as Error).message }, 'settingResult threw: no result pushed');
      return;
    }
    if (result === 'never') return;
    if (!state.push.url) {
      state.logger?.warn({ messageId }, 'simulator has no pushUrl: setting result not pushed');
      return;
    }
    state.push.pushInBackground(3, { message_id: messageId, device_id: dev.device.id, set_result: result });
  }, state.settingDelayMs);
  state.timers.add(timer);
  return { json: { result_code: CODE.ok, result_message: MESSAGE.ok, message_id: messageId } };
}
