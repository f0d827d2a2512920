/**
 * The InfluxQL of a rollup and its result as `device_data_1h` points. InfluxDB computes the
 * aggregates itself (`GROUP BY time(1h)` over the raw rows), so a rollup equals what a query over
 * raw would answer, bit for bit: the values are written back exactly as InfluxDB returned them.
 */
import { MEASUREMENT, type Measurement, type SinkPoint } from '../influx/api.js';
import { influxIdent, influxString, type InfluxSeries } from '../influx/query.js';

/** `device_data`'s fields by what their rollup holds. */
export interface FieldKinds {
  /** float/integer: `_mean`, `_min`, `_max`, `_sum`, `_count` (`_sum / _count` over any range is the exact mean) */
  numeric: string[];
  /** string/boolean: `_last`, `_count` */
  other: string[];
}

const NUMERIC_AGGREGATES = ['mean', 'min', 'max', 'sum', 'count'] as const;
const OTHER_AGGREGATES = ['last', 'count'] as const;

/** The rows of `SHOW FIELD KEYS FROM device_data`: a field with a numeric type anywhere counts as numeric. */
export function fieldKinds(rows: ReadonlyArray<Record<string, unknown>>): FieldKinds {
  const types = new Map<string, Set<string>>();
  for (const r of rows) {
    const key = String(r.fieldKey);
    if (!types.has(key)) types.set(key, new Set());
    types.get(key)!.add(String(r.fieldType));
  }
  const numeric: string[] = [];
  const other: string[] = [];
  for (const [key, t] of [...types].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    (t.has('float') || t.has('integer') ? numeric : other).push(key);
  }
  return { numeric, other };
}

export function fieldKeysQuery(): string {
  return `SHOW FIELD KEYS FROM ${influxIdent(MEASUREMENT.data)}`;
}

/** The buckets of a rollup query: UTC hours, or the days of a zone (InfluxQL `tz()`, DST included). */
export type RollupBuckets = { every: '1h' } | { every: '1d'; timezone: string };

/**
 * The hourly aggregates of [from, to) (hour-aligned epoch ms) for one device, or every device when
 * `deviceId` is undefined; one series per device, hours without any value left out. With
 * `{ every: '1d', timezone }` the same aggregates per platform-local day, over the raw rows.
 */
export function rollupQuery(
  fields: FieldKinds,
  from: number,
  to: number,
  deviceId?: string,
  buckets: RollupBuckets = { every: '1h' },
): string {
  const select: string[] = [];
  for (const f of fields.numeric)
    for (const a of NUMERIC_AGGREGATES) select.push(`${a}(${influxIdent(f)}) AS ${influxIdent(`${f}_${a}`)}`);
  for (const f of fields.other)
    for (const a of OTHER_AGGREGATES) select.push(`${a}(${influxIdent(f)}) AS ${influxIdent(`${f}_${a}`)}`);
  const device = deviceId === undefined ? '' : `${influxIdent('device_id')} = ${influxString(deviceId)} AND `;
  return `SELECT ${select.join(', ')} FROM ${influxIdent(MEASUREMENT.data)} WHERE ${device}time >= ${from}ms AND time < ${to}ms GROUP BY time(${buckets.every}), ${influxIdent('device_id')} fill(none)${buckets.every === '1d' ? ` tz(${influxString(buckets.timezone)})` : ''}`;
}

/** The rollup points of a rollupQuery's (or dayQuery's) result (time = the bucket's start). */
export function rollupPoints(
  series: readonly InfluxSeries[],
  measurement: Measurement = MEASUREMENT.rollup,
): SinkPoint[] {
  const points: SinkPoint[] = [];
  for (const s of series) {
    const deviceId = s.tags?.device_id;
    if (deviceId === undefined) continue;
    const timeAt = s.columns.indexOf('time');
    for (const row of s.values) {
      const fields: Record<string, unknown> = {};
      let n = 0;
      for (let i = 0; i < s.columns.length; i++) {
        if (i === timeAt || row[i] === null || row[i] === undefined) continue;
        fields[s.columns[i]] = row[i];
        n++;
      }
      if (n) points.push({ measurement, deviceId, time: row[timeAt] as number, fields });
    }
  }
  return points;
}
