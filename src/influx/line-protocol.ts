/**
 * SinkPoint -> InfluxDB line protocol, and the value rules of the schema (docs/influxdb.md):
 *
 * - finite numbers are always float fields (`1` is written as `1`, never `1i`), so a datapoint
 *   that is sometimes whole and sometimes fractional never causes an integer/float conflict;
 * - booleans are boolean fields, strings are string fields (a numeric string stays a string:
 *   the platform's type is kept);
 * - `null` / `undefined` leave the field out of that row (rows are sparse) and are counted;
 * - objects and arrays are stored as their JSON text in a string field;
 * - NaN, ±Infinity and values of other JS types cannot be stored: the value becomes a dead letter
 *   and the rest of the row is written;
 * - a device id or field name that line protocol cannot carry exactly (empty, a line break, a
 *   trailing backslash, a lone UTF-16 surrogate) or a reserved field name makes a dead letter too.
 *
 * Measurements and string values are escaped with the client library's `escape` helpers (keys
 * with our own, see keys.ts); lines are built as plain strings because
 * building a `Point` object per row costs more than the rest of the write path together.
 */
import { isDeepStrictEqual } from 'node:util';
import { escape } from '@influxdata/influxdb-client';
import { MEASUREMENT, type SinkPoint } from './api.js';
import { KeyCache } from './keys.js';

export { escapeFieldKey, escapeTagValue, KeyCache, keyProblem, nameProblem, RESERVED_FIELD_NAMES, type KeyRole } from './keys.js';

export type FieldValue = number | boolean | string;

/** A value (or a whole point) that cannot be written, with the reason. */
export interface ValueProblem {
  /** the field, or undefined when the whole point is unusable */
  field?: string;
  reason: string;
}

export interface NormalisedPoint {
  /** the original point (values as received), kept for dead letters */
  raw: SinkPoint;
  /** the line, without trailing newline */
  line: string;
  /** when the line carries only some of the point's fields (isolating a refused one): their names */
  only?: string[];
}

/**
 * The storable values a line carries, in the order they arrived. Recomputed from the raw point
 * when needed (only when InfluxDB refused something) instead of being kept for every point.
 */
export function storableFields(point: NormalisedPoint, keys: KeyCache): Record<string, FieldValue> {
  // no prototype: a field named "__proto__" or "toString" is data like any other
  const fields: Record<string, FieldValue> = Object.create(null);
  for (const name of point.only ?? Object.keys(point.raw.fields)) {
    const value = normaliseValue(point.raw.fields[name]);
    if (value === null || typeof value === 'object' || typeof keys.get(name, 'field name') !== 'string') continue;
    if (typeof encodeFor(INTEGER_FIELDS[point.raw.measurement], name, value) !== 'string') continue;
    fields[name] = value;
  }
  return fields;
}

export interface Normalisation {
  /** undefined when nothing of the point can be written */
  point?: NormalisedPoint;
  problems: ValueProblem[];
  /** null/undefined values left out */
  absent: number;
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

const measurementCache = new Map<string, string>();

function escapedMeasurement(name: string): string {
  let e = measurementCache.get(name);
  if (e === undefined) {
    e = escape.measurement(name);
    measurementCache.set(name, e);
  }
  return e;
}

/** Builds the line of already-validated parts. */
export function encodeLine(measurement: string, escapedDevice: string, fields: Array<[key: string, value: string]>, time: number): string {
  let line = `${escapedMeasurement(measurement)},device_id=${escapedDevice} `;
  for (let i = 0; i < fields.length; i++) {
    if (i > 0) line += ',';
    line += `${fields[i][0]}=${fields[i][1]}`;
  }
  return `${line} ${time}`;
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
};

/** A value in line protocol for a field of a measurement: `<n>i` for the schema's integer fields. */
function encodeFor(integers: IntegerFields | undefined, name: string, value: FieldValue): string | { problem: string } {
  if (integers === undefined || typeof value !== 'number' || !integers.has(name)) return encodeValue(value);
  return Number.isSafeInteger(value) ? `${value}i` : { problem: `value ${value} is not a whole number (the schema stores "${name}" as integer)` };
}

/**
 * Where encodePoint reports what it leaves out. One report serves a whole batch: good points add
 * nothing to it (the write path runs once per point and allocates nothing beyond the line).
 */
export interface EncodeReport {
  /** null/undefined values left out, added up */
  absent: number;
  /** appended to only when something of a point cannot be written */
  problems: ValueProblem[];
}

/**
 * The line of one point (without trailing newline), or undefined when nothing of it can be
 * written. Every unusable value adds a problem to `report`; a point with no storable field adds
 * one problem that says why.
 */
export function encodePoint(raw: SinkPoint, keys: KeyCache, report: EncodeReport): string | undefined {
  if (typeof raw.deviceId !== 'string') return void report.problems.push({ reason: 'device id is not a string' });
  const device = keys.get(raw.deviceId, 'device id');
  if (typeof device !== 'string') return void report.problems.push({ reason: device.problem });
  if (!Number.isSafeInteger(raw.time)) return void report.problems.push({ reason: `time ${String(raw.time)} is not whole epoch milliseconds` });
  if (raw.fields === null || typeof raw.fields !== 'object') return void report.problems.push({ reason: 'point has no fields object' });

  const integers = INTEGER_FIELDS[raw.measurement];
  const firstProblem = report.problems.length;
  // the line is built as we go: this loop runs once per value of every point written
  let line = `${escapedMeasurement(raw.measurement)},device_id=${device} `;
  let count = 0;
  for (const name in raw.fields) {
    const value = normaliseValue(raw.fields[name]);
    if (value === null) {
      report.absent++;
      continue;
    }
    if (typeof value === 'object') {
      report.problems.push({ field: name, reason: `field "${name}": ${value.problem}` });
      continue;
    }
    const key = keys.get(name, 'field name');
    if (typeof key !== 'string') {
      report.problems.push({ field: name, reason: key.problem });
      continue;
    }
    const encoded = integers === undefined ? encodeValue(value) : encodeFor(integers, name, value);
    if (typeof encoded !== 'string') {
      report.problems.push({ field: name, reason: `field "${name}": ${encoded.problem}` });
      continue;
    }
    line += `${count++ === 0 ? '' : ','}${key}=${encoded}`;
  }
  if (count === 0) {
    const own = report.problems.splice(firstProblem);
    const why = own.length ? own.map((p) => p.reason).join('; ') : 'every value is null or missing';
    report.problems.push({ reason: `no storable field: ${why}` });
    return undefined;
  }
  return `${line} ${raw.time}`;
}

/**
 * Normalises one point: what can be written becomes a line, every unusable value is a problem.
 * A point whose every field is unusable (or absent) has no line. (encodePoint without the objects.)
 */
export function normalisePoint(raw: SinkPoint, keys: KeyCache): Normalisation {
  const report: EncodeReport = { absent: 0, problems: [] };
  const line = encodePoint(raw, keys, report);
  return line === undefined ? { problems: report.problems, absent: report.absent } : { point: { raw, line }, problems: report.problems, absent: report.absent };
}

/** The same point with only the named fields (a subset of its storable ones), e.g. to isolate a refused one. */
export function withFields(point: NormalisedPoint, names: string[], keys: KeyCache): NormalisedPoint | undefined {
  const fields = storableFields(point, keys);
  const encoded: Array<[string, string]> = [];
  const only: string[] = [];
  const integers = INTEGER_FIELDS[point.raw.measurement];
  for (const name of names) {
    if (!(name in fields)) continue;
    only.push(name);
    encoded.push([keys.get(name, 'field name') as string, encodeFor(integers, name, fields[name]) as string]);
  }
  if (encoded.length === 0) return undefined;
  const device = keys.get(point.raw.deviceId, 'device id') as string;
  return { raw: point.raw, only, line: encodeLine(point.raw.measurement, device, encoded, point.raw.time) };
}

/**
 * Merges points with the same measurement, device and time: a later value overwrites an earlier
 * one field by field; a later null does not erase an earlier value. Keeps first-seen order.
 * `conflicts` counts fields two such points both carry with different values (the later one won).
 */
export function mergeDuplicates(points: SinkPoint[]): { points: SinkPoint[]; merged: number; conflicts: number } {
  // Per series: the latest time seen and the indices of its points. While times only grow (history
  // pages, pushes in order) no duplicate is possible and no per-point map is built; the first time
  // that does not grow builds the series' time -> index map.
  interface SeriesState {
    max: number;
    indices: number[];
    byTime?: Map<number, number>;
  }
  const series = new Map<string, Map<string, SeriesState>>();
  const out: SinkPoint[] = [];
  let merged = 0;
  let conflicts = 0;
  for (const p of points) {
    let devices = series.get(p.measurement);
    if (devices === undefined) series.set(p.measurement, (devices = new Map()));
    let state = devices.get(p.deviceId);
    if (state === undefined) {
      devices.set(p.deviceId, { max: p.time, indices: [out.length] });
      out.push(p);
      continue;
    }
    if (p.time > state.max) {
      state.max = p.time;
      state.byTime?.set(p.time, out.length);
      state.indices.push(out.length);
      out.push(p);
      continue;
    }
    state.byTime ??= new Map(state.indices.map((i) => [out[i].time, i]));
    const at = state.byTime.get(p.time);
    if (at === undefined || Number.isNaN(p.time)) {
      state.byTime.set(p.time, out.length);
      state.indices.push(out.length);
      out.push(p);
      continue;
    }
    merged++;
    // Object.assign onto a prototype-less object: a spread copy would turn a later "__proto__"
    // assignment into a prototype change instead of a field
    const fields: Record<string, unknown> = Object.assign(Object.create(null), out[at].fields);
    for (const name in p.fields) {
      const v = p.fields[name];
      const was = fields[name];
      if ((v === null || v === undefined) && was !== undefined && was !== null) continue;
      if (was !== undefined && was !== null && !isDeepStrictEqual(was, v)) conflicts++;
      fields[name] = v;
    }
    out[at] = { ...out[at], fields };
  }
  return { points: out, merged, conflicts };
}
