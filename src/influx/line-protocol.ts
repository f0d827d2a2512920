/**
 * SinkPoint -> one line of InfluxDB line protocol, under the value rules of field-values.ts (and,
 * given one, the writer's rule for numeric strings, numeric-strings.ts) and the name rules of
 * keys.ts. A device id or field name that line protocol cannot carry exactly, a reserved field
 * name, or a value that cannot be stored is reported as a problem (it becomes a dead letter) and
 * the rest of the point is written.
 *
 * Lines are built as plain strings because building a `Point` object per row costs more than the
 * rest of the write path together.
 */
import { fieldRecord } from '../base/field-record.js';
import type { SinkPoint } from './api.js';
import {
  encodeFor,
  encodeValue,
  INTEGER_FIELDS,
  normaliseValue,
  type FieldValue,
  type ValueProblem,
} from './field-values.js';
import { escapedMeasurement, type KeyCache } from './keys.js';
import type { NumericStrings } from './numeric-strings.js';

export interface NormalisedPoint {
  /** the original point (values as received), kept for dead letters */
  raw: SinkPoint;
  /** the line, without trailing newline */
  line: string;
  /** when the line carries only some of the point's fields (isolating a refused one): their names */
  only?: string[];
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
export function encodePoint(
  raw: SinkPoint,
  keys: KeyCache,
  report: EncodeReport,
  strings?: NumericStrings,
): string | undefined {
  if (typeof raw.deviceId !== 'string') return void report.problems.push({ reason: 'device id is not a string' });
  const device = keys.get(raw.deviceId, 'device id');
  if (typeof device !== 'string') return void report.problems.push({ reason: device.problem });
  if (!Number.isSafeInteger(raw.time))
    return void report.problems.push({ reason: `time ${String(raw.time)} is not whole epoch milliseconds` });
  if (raw.fields === null || typeof raw.fields !== 'object')
    return void report.problems.push({ reason: 'point has no fields object' });

  const integers = INTEGER_FIELDS[raw.measurement];
  const firstProblem = report.problems.length;
  // the line is built as we go: this loop runs once per value of every point written
  let line = `${escapedMeasurement(raw.measurement)},device_id=${device} `;
  let count = 0;
  for (const name in raw.fields) {
    let value = normaliseValue(raw.fields[name]);
    if (typeof value === 'string' && strings !== undefined && typeof raw.fields[name] === 'string')
      value = strings.read(raw.measurement, name, value);
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
 * The storable values a line carries, in the order they arrived. Recomputed from the raw point
 * when needed (only when InfluxDB refused something) instead of being kept for every point.
 */
export function storableFields(
  point: NormalisedPoint,
  keys: KeyCache,
  strings?: NumericStrings,
): Record<string, FieldValue> {
  // a field named "__proto__" or "toString" is data like any other
  const fields = fieldRecord<FieldValue>();
  for (const name of point.only ?? Object.keys(point.raw.fields)) {
    const raw = point.raw.fields[name];
    let value = normaliseValue(raw);
    if (typeof value === 'string' && strings !== undefined && typeof raw === 'string')
      value = strings.read(point.raw.measurement, name, value);
    if (value === null || typeof value === 'object' || typeof keys.get(name, 'field name') !== 'string') continue;
    if (typeof encodeFor(INTEGER_FIELDS[point.raw.measurement], name, value) !== 'string') continue;
    fields[name] = value;
  }
  return fields;
}

/** The same point with only the named fields (a subset of its storable ones), e.g. to isolate a refused one. */
export function withFields(
  point: NormalisedPoint,
  names: string[],
  keys: KeyCache,
  strings?: NumericStrings,
): NormalisedPoint | undefined {
  const fields = storableFields(point, keys, strings);
  const only: string[] = [];
  const integers = INTEGER_FIELDS[point.raw.measurement];
  let set = '';
  for (const name of names) {
    if (!(name in fields)) continue;
    set += `${only.length === 0 ? '' : ','}${keys.get(name, 'field name') as string}=${encodeFor(integers, name, fields[name]) as string}`;
    only.push(name);
  }
  if (only.length === 0) return undefined;
  const device = keys.get(point.raw.deviceId, 'device id') as string;
  return {
    raw: point.raw,
    only,
    line: `${escapedMeasurement(point.raw.measurement)},device_id=${device} ${set} ${point.raw.time}`,
  };
}
