/**
 * The parts of a device request: the path segment of a device id, the query of a history page,
 * lists of datapoint names. What cannot be sent as asked is refused here, before any request, with
 * an InvalidParametersError that names it.
 */
import type { DeviceRef, HistoryQuery } from './api.js';
import { ENDPOINT, InvalidParametersError, type Endpoint } from './errors.js';
import { formatPlatformTime } from './time-format.js';
import { PLATFORM_DEFAULTS } from '../base/config.js';

/** The platform's page size limits (SPEC §2.3). */
export const HISTORY_LIMIT = { min: 1, max: PLATFORM_DEFAULTS.historyPageMax } as const;

/** A path segment: Chinese characters, spaces and "/" in device ids must not change the path. */
export function segment(id: string): string {
  return encodeURIComponent(id);
}

export function idList(endpoint: Endpoint, ids: string[]): string {
  for (const id of ids) {
    if (typeof id !== 'string' || id === '' || id.includes(',')) {
      throw invalid(endpoint, `datapoint name ${JSON.stringify(id)} cannot be sent (empty or contains ",")`);
    }
  }
  // commas stay literal: they separate names in the vendor's syntax
  return ids.map(encodeURIComponent).join(',');
}

export function checkDevice(endpoint: Endpoint, device: DeviceRef): void {
  if (typeof device?.id !== 'string' || device.id === '')
    throw invalid(endpoint, 'device id must be a non-empty string');
  // header values are bytes: a key outside Latin-1 (or with control characters) cannot be sent
  if (typeof device.key !== 'string' || device.key === '' || /[^\t\x20-\x7e\x80-\xff]/.test(device.key)) {
    throw invalid(
      endpoint,
      `the key of device "${device.id}" is empty or holds characters an HTTP header cannot carry`,
    );
  }
}

/** The query string of one history page; times in the platform's zone. */
export function historyQuery(q: HistoryQuery, timezone: string): string {
  const endpoint = ENDPOINT.history;
  const parts: string[] = [];
  if (q.ids && q.ids.length > 0) parts.push(`id=${idList(endpoint, q.ids)}`);
  if ((q.start === undefined) !== (q.end === undefined))
    throw invalid(endpoint, 'start and end must be given together');
  if (q.start !== undefined && q.end !== undefined) {
    if (q.start > q.end) throw invalid(endpoint, `start (${q.start}) is after end (${q.end})`);
    parts.push(`start=${formatPlatformTime(q.start, timezone)}`, `end=${formatPlatformTime(q.end, timezone)}`);
  }
  if (q.limit !== undefined) {
    if (!Number.isInteger(q.limit) || q.limit < HISTORY_LIMIT.min || q.limit > HISTORY_LIMIT.max) {
      throw invalid(
        endpoint,
        `limit must be a whole number from ${HISTORY_LIMIT.min} to ${HISTORY_LIMIT.max}, got ${q.limit}`,
      );
    }
    parts.push(`limit=${q.limit}`);
  }
  if (q.cursor !== undefined) {
    if (!Number.isInteger(q.cursor)) throw invalid(endpoint, `cursor must be epoch ms, got ${q.cursor}`);
    parts.push(`cursor=${q.cursor}`);
  }
  if (q.first !== undefined) parts.push(`first=${q.first}`);
  return parts.join('&');
}

/** A request refused before it is sent. */
export function invalid(endpoint: Endpoint, problem: string): InvalidParametersError {
  return new InvalidParametersError(endpoint, 'request', undefined, undefined, problem);
}
