/**
 * Compares a device's history at the platform with what InfluxDB holds, hour by hour: the platform
 * side is read by the backfill's walk (the same HistoryWalk the backfill runner uses, one walk),
 * InfluxDB's by one InfluxQL query per window. Rows that share a millisecond are merged as the
 * writer merges them (the later value wins field by field), values are normalised as the writer
 * stores them, so an equal copy compares equal. A plain decimal string compares as its number on
 * both sides: "21.5" at the platform equals 21.5 in InfluxDB (EXPEED_NUMERIC_STRINGS=number) and
 * "21.5" in a field InfluxDB holds as a string.
 */
import { isDeepStrictEqual } from 'node:util';
import type { CallOptions, DeviceRef } from '../platform/api.js';
import { MEASUREMENT, type SinkPoint } from '../influx/api.js';
import { normaliseValue } from '../influx/field-values.js';
import { decimalValue } from '../influx/numeric-strings.js';
import { mergeDuplicates } from '../influx/merge-duplicates.js';
import { influxIdent, influxString, type InfluxQuery } from '../influx/query.js';
import type { HistoryWalk } from './backfill-runner.js';

export const HOUR = 3_600_000;

/** How an hour compares: equal, or the worst kind of difference found in it. */
export type HourResult = 'equal' | 'missing' | 'extra' | 'differing';
export const HOUR_RESULTS: readonly HourResult[] = ['equal', 'missing', 'extra', 'differing'];

export interface HourComparison {
  deviceId: string;
  /** epoch ms of the hour's start (UTC hour grid) */
  hour: number;
  result: HourResult;
  /** timestamps the platform has and InfluxDB lacks */
  missing: number;
  /** timestamps InfluxDB has and the platform does not */
  extra: number;
  /** timestamps both have with different fields or values */
  differing: number;
  /** the first few differences, as text */
  examples: string[];
}

/** What repairing a window takes: points to write (the platform's rows) and InfluxDB points to remove first. */
export interface WindowRepair {
  write: SinkPoint[];
  /** timestamps of `device_data` points to delete: extra points, and points with fields the platform row lacks */
  remove: number[];
}

export interface WindowComparison {
  hours: HourComparison[];
  repair: WindowRepair;
  /** history pages the walk fetched (platform requests) */
  pages: number;
  platformRows: number;
}

export interface HistoryCompareOptions {
  walk: HistoryWalk;
  query: Pick<InfluxQuery, 'rows'>;
  /** history page size (EXPEED_PAGE_LIMIT) */
  pageLimit: number;
  /** examples kept per hour (default 3) */
  examples?: number;
}

type Fields = Record<string, unknown>;

function normalised(fields: Fields): Fields {
  const out: Fields = {};
  for (const k in fields) {
    const v = normaliseValue(fields[k]);
    if (v === null || typeof v === 'object') continue;
    out[k] = comparable(v);
  }
  return out;
}

/** A value as compared: a plain decimal string as its number. */
function comparable(v: unknown): unknown {
  return typeof v === 'string' ? (decimalValue(v) ?? v) : v;
}

function show(v: unknown): string {
  return v === undefined ? 'absent' : JSON.stringify(v);
}

/** One window [from, to) of one device: walked at the platform, read from InfluxDB, compared per hour. */
export async function compareWindow(
  o: HistoryCompareOptions,
  device: DeviceRef,
  from: number,
  to: number,
  call?: CallOptions,
): Promise<WindowComparison> {
  const maxExamples = o.examples ?? 3;
  const points: SinkPoint[] = [];
  let pages = 0;
  for await (const page of o.walk(device, { from, to, limit: o.pageLimit }, call)) {
    pages++;
    for (const r of page.carried ?? [])
      if (r.time >= from && r.time < to)
        points.push({ measurement: MEASUREMENT.data, deviceId: device.id, time: r.time, fields: r.values });
    for (const r of page.rows)
      if (r.time >= from && r.time < to)
        points.push({ measurement: MEASUREMENT.data, deviceId: device.id, time: r.time, fields: r.values });
  }
  const platform = new Map<number, { point: SinkPoint; fields: Fields }>();
  for (const p of mergeDuplicates(points).points) platform.set(p.time, { point: p, fields: normalised(p.fields) });

  const held = new Map<number, Fields>();
  const rows = await o.query.rows(
    `SELECT * FROM ${influxIdent(MEASUREMENT.data)} WHERE ${influxIdent('device_id')} = ${influxString(device.id)} AND time >= ${from}ms AND time < ${to}ms`,
  );
  for (const r of rows) {
    const f: Fields = {};
    for (const k in r)
      if (k !== 'time' && k !== 'device_id' && r[k] !== null && r[k] !== undefined) f[k] = comparable(r[k]);
    held.set(Number(r.time), f);
  }

  const hours = new Map<number, HourComparison>();
  const hourAt = (t: number): HourComparison => {
    const h = Math.floor(t / HOUR) * HOUR;
    let c = hours.get(h);
    if (!c)
      hours.set(
        h,
        (c = { deviceId: device.id, hour: h, result: 'equal', missing: 0, extra: 0, differing: 0, examples: [] }),
      );
    return c;
  };
  const note = (c: HourComparison, text: string) => {
    if (c.examples.length < maxExamples) c.examples.push(text);
  };
  const repair: WindowRepair = { write: [], remove: [] };
  for (const [t, p] of platform) {
    const c = hourAt(t);
    const have = held.get(t);
    if (!have) {
      c.missing++;
      note(c, `${new Date(t).toISOString()}: missing in InfluxDB`);
      repair.write.push(p.point);
      continue;
    }
    const names = new Set([...Object.keys(p.fields), ...Object.keys(have)]);
    const diff = [...names].filter((k) => !isDeepStrictEqual(p.fields[k], have[k]));
    if (diff.length === 0) continue;
    c.differing++;
    const k = diff[0];
    note(c, `${new Date(t).toISOString()} ${k}: platform ${show(p.fields[k])}, InfluxDB ${show(have[k])}`);
    // a field InfluxDB holds and the platform row lacks goes only with the whole point
    if (diff.some((name) => !(name in p.fields))) repair.remove.push(t);
    repair.write.push(p.point);
  }
  for (const t of held.keys()) {
    if (platform.has(t)) continue;
    const c = hourAt(t);
    c.extra++;
    note(c, `${new Date(t).toISOString()}: in InfluxDB, not at the platform`);
    repair.remove.push(t);
  }
  // every hour of the window is reported, also those neither side has rows in (equal)
  for (let h = Math.floor(from / HOUR) * HOUR; h < to; h += HOUR) hourAt(Math.max(h, from));
  for (const c of hours.values())
    c.result = c.missing ? 'missing' : c.differing ? 'differing' : c.extra ? 'extra' : 'equal';
  return { hours: [...hours.values()].sort((a, b) => a.hour - b.hour), repair, pages, platformRows: platform.size };
}
