/**
 * The value rules of the schema (docs/influxdb.md): what a JavaScript value becomes in InfluxDB.
 *
 * - finite numbers are always float fields (`1` is written as `1`, never `1i`), so a datapoint
 *   that is sometimes whole and sometimes fractional never causes an integer/float conflict; only
 *   the schema's integer fields (INTEGER_FIELDS) are written `<n>i`;
 * - booleans are boolean fields, strings are string fields; a datapoint string that is a plain
 *   decimal number ("21.5") is then a float under EXPEED_NUMERIC_STRINGS (numeric-strings.ts,
 *   applied by the writer after this);
 * - `null` / `undefined` leave the field out of that row (rows are sparse) and are counted;
 * - objects and arrays are stored as their JSON text in a string field;
 * - NaN, ±Infinity and values of other JS types cannot be stored: the value becomes a dead letter
 *   and the rest of the row is written.
 */
import { escape } from '@influxdata/influxdb-client';
import { MEASUREMENT } from './api.js';

export type FieldValue = number | boolean | string;

/** A value (or a whole point) that cannot be written, with the reason. */
export interface ValueProblem {
  /** the field, or undefined when the whole point is unusable */
  field?: string;
  reason: string;
}

/** The storable form of one value, `null` for absent, or a problem. */
export function normaliseValue(value: unknown): FieldValue | null | { problem: string } {
  switch (typeof value) {
    case 'number':
      return Number.isFinite(value) ? value : { problem: `value ${String(value)} is not a finite number` };
    case 'boolean':
    case 'string':
      return value;
    case 'undefined':
      return null;
    case 'bigint':
      return Number(value);
    case 'object':
      if (value === null) return null;
      try {
        return JSON.stringify(value);
      } catch (err) {
        return { problem: `value cannot be stored as JSON: ${(err as Error).message}` };
      }
    default:
      return { problem: `value of type ${typeof value} cannot be stored` };
  }
}

/** One field value in line protocol: float without suffix, boolean, or quoted string. */
export function encodeValue(value: FieldValue): string {
  if (typeof value === 'number') return Object.is(value, -0) ? '0' : String(value);
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  return escape.quoted(value);
}

/** Which fields of a measurement are integers. */
export interface IntegerFields {
  has(field: string): boolean;
}

/**
 * Fields the schema stores as integers (the status code exactly as received, the rollups' counts);
 * every other number is a float. A value there that is not a whole number is refused rather than rounded.
 */
export const INTEGER_FIELDS: Readonly<Record<string, IntegerFields>> = {
  [MEASUREMENT.status]: new Set(['raw_status']),
  [MEASUREMENT.rollup]: { has: (field) => field.endsWith('_count') },
  [MEASUREMENT.rollupDay]: { has: (field) => field.endsWith('_count') },
};

/** A value in line protocol for a field of a measurement: `<n>i` for the schema's integer fields. */
export function encodeFor(
  integers: IntegerFields | undefined,
  name: string,
  value: FieldValue,
): string | { problem: string } {
  if (integers === undefined || typeof value !== 'number' || !integers.has(name)) return encodeValue(value);
  return Number.isSafeInteger(value)
    ? `${value}i`
    : { problem: `value ${value} is not a whole number (the schema stores "${name}" as integer)` };
}
