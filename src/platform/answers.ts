/// <reference lib="es2024.string" />
/**
 * The platform's answers read into our types: one vendor row `{timestamp, name: value...}` into a
 * DataRow, and the protocol errors for a field that is missing or unreadable. What cannot be read
 * is kept with its reason, never dropped.
 */
import { fieldRecord } from '../base/field-record.js';
import type { DataRow, UnreadableRow } from './api.js';
import { PlatformProtocolError, type Endpoint } from './errors.js';
import { parsePlatformTime } from './timestamp.js';

/**
 * Reads one vendor row. Names and string values must be well-formed Unicode: a lone UTF-16
 * surrogate (JSON can carry one as an escape) would be stored as U+FFFD, merging distinct names or
 * values into one.
 */
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
  // datapoints named "__proto__" or "toString" are plain values
  const values = fieldRecord<unknown>();
  for (const key of Object.keys(record)) {
    if (key === 'timestamp') continue;
    const value = record[key];
    if (!key.isWellFormed() || (typeof value === 'string' && !value.isWellFormed())) {
      unreadable.push({
        reason: `datapoint ${describe(key)} ${key.isWellFormed() ? `has the value ${describe(value)}, which is` : 'has a name that is'} not well-formed Unicode (a lone UTF-16 surrogate)`,
        raw,
      });
      return;
    }
    values[key] = value;
  }
  rows.push({ time, values });
}

/** A field of an answer that is missing or not what SPEC.md says. */
export function missing(endpoint: Endpoint, field: string, value: unknown): PlatformProtocolError {
  return new PlatformProtocolError(
    endpoint,
    value === undefined ? `missing "${field}"` : `"${field}" is invalid (${describe(value)})`,
  );
}

/** A value as an error may quote it: JSON, at most 80 characters. */
export function describe(value: unknown): string {
  const s = JSON.stringify(value) ?? String(value);
  return s.length > 80 ? `${s.slice(0, 80)}…` : s;
}
