/**
 * Points of one write that share measurement, device and time become one point before encoding:
 * InfluxDB would keep only the last line's fields for a field both carry, and counting each once
 * keeps `written` honest.
 */
import { isDeepStrictEqual } from 'node:util';
import { fieldRecord } from '../base/field-record.js';
import type { SinkPoint } from './api.js';

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
    // Object.assign onto a field record: a spread copy would turn a later "__proto__"
    // assignment into a prototype change instead of a field
    const fields: Record<string, unknown> = Object.assign(fieldRecord<unknown>(), out[at].fields);
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
