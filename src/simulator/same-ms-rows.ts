/**
 * One row served as 2 or 3 rows at the same millisecond (`sameMsRate`), as the real platform
 * sometimes does: the fields are dealt round-robin over the parts, and a part left without a field
 * repeats the first field with another value (two rows of one millisecond that disagree; the later
 * one wins when merged).
 */
import type { SimRow, SimValue } from './types.js';

function otherValue(v: SimValue, i: number): SimValue {
  if (typeof v === 'number') return v + i;
  if (typeof v === 'boolean') return !v;
  return `${v}${'*'.repeat(i)}`;
}

/** The parts of `row` in ascending order; `h` is the (seed, time) hash that chose to split it. */
export function sameMsParts(row: SimRow, h: number): SimRow[] {
  const n = 2 + (h & 1);
  const names = Object.keys(row.values);
  const parts: SimRow[] = [];
  for (let i = 0; i < n; i++) {
    const values: Record<string, SimValue> = {};
    for (let f = i; f < names.length; f += n) values[names[f]] = row.values[names[f]];
    if (names.length > 0 && Object.keys(values).length === 0) {
      // parts of one millisecond stay distinct (a boolean has only one other value)
      const v = row.values[names[0]];
      if (typeof v === 'boolean' && i > 1) continue;
      values[names[0]] = otherValue(v, i);
    }
    parts.push({ time: row.time, values });
  }
  return parts;
}
