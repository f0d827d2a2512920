/**
 * The InfluxQL of a daily rollup from the hourly one: InfluxDB groups the hours by platform-local
 * day (`GROUP BY time(1d) tz('<EXPEED_TIMEZONE>')`, DST days of 23 or 25 hours included) and
 * combines them exactly — sums and counts add, the min of the minima, the max of the maxima, the
 * last `_last`, and the mean is `sum(_sum) / sum(_count)`, the raw mean, never a mean of means.
 * The answer has the column names of `device_data_1h`, so rollupPoints turns it into points.
 */
import { MEASUREMENT } from '../influx/api.js';
import { influxIdent, influxString } from '../influx/query.js';
import type { FieldKinds } from './rollup-query.js';

const SUFFIX = /_(mean|min|max|sum|count|last)$/;

/**
 * The datapoints of `device_data_1h` from its field keys (`SHOW FIELD KEYS`): one with a `_mean`
 * or `_sum` is numeric, one with only `_last` is a string/boolean datapoint.
 */
export function hourlyFieldKinds(rows: ReadonlyArray<Record<string, unknown>>): FieldKinds {
  const numeric = new Set<string>();
  const other = new Set<string>();
  for (const r of rows) {
    const m = SUFFIX.exec(String(r.fieldKey));
    if (!m) continue;
    const name = String(r.fieldKey).slice(0, m.index);
    if (m[1] === 'mean' || m[1] === 'sum' || m[1] === 'min' || m[1] === 'max') numeric.add(name);
    else if (m[1] === 'last') other.add(name);
  }
  const sorted = (names: Iterable<string>) => [...names].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  // a datapoint that was numeric in some hours is numeric, as in fieldKinds
  return { numeric: sorted(numeric), other: sorted([...other].filter((n) => !numeric.has(n))) };
}

/** `"rp"."device_data_1h"`, or the measurement alone for the default RP. */
export function hourlySource(rp: string | undefined): string {
  return rp === undefined ? influxIdent(MEASUREMENT.rollup) : `${influxIdent(rp)}.${influxIdent(MEASUREMENT.rollup)}`;
}

/** The daily aggregates of the hours in [from, to) (day starts, epoch ms) of one device, from `source` (hourlySource). */
export function dayQuery(
  fields: FieldKinds,
  source: string,
  from: number,
  to: number,
  deviceId: string,
  timezone: string,
): string {
  const select: string[] = [];
  const as = (f: string, a: string) => influxIdent(`${f}_${a}`);
  for (const f of fields.numeric) {
    select.push(`sum(${as(f, 'sum')}) / sum(${as(f, 'count')}) AS ${as(f, 'mean')}`);
    select.push(`min(${as(f, 'min')}) AS ${as(f, 'min')}`, `max(${as(f, 'max')}) AS ${as(f, 'max')}`);
    select.push(`sum(${as(f, 'sum')}) AS ${as(f, 'sum')}`, `sum(${as(f, 'count')}) AS ${as(f, 'count')}`);
  }
  for (const f of fields.other)
    select.push(`last(${as(f, 'last')}) AS ${as(f, 'last')}`, `sum(${as(f, 'count')}) AS ${as(f, 'count')}`);
  const where = `${influxIdent('device_id')} = ${influxString(deviceId)} AND time >= ${from}ms AND time < ${to}ms`;
  return `SELECT ${select.join(', ')} FROM ${source} WHERE ${where} GROUP BY time(1d), ${influxIdent('device_id')} fill(none) tz(${influxString(timezone)})`;
}
