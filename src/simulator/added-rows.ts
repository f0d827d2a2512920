/**
 * Rows added to a simulated device from outside (pushed data, a test's rows), kept in time order
 * with unique times: a row at a time already held is merged into it, the later values winning.
 */
import type { SimRow, SimValue } from './types.js';

/** The first index whose row time is >= t. */
export function lowerBound(rows: SimRow[], t: number): number {
  let lo = 0;
  let hi = rows.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (rows[mid].time < t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export class AddedRows {
  /** time ascending, unique times */
  readonly rows: SimRow[] = [];

  add(rows: Array<{ time: number; values: Record<string, unknown> }>): void {
    for (const r of rows) {
      if (!Number.isFinite(r.time)) throw new Error(`addRows: row time must be epoch ms, got ${String(r.time)}`);
      const i = lowerBound(this.rows, r.time);
      const values = r.values as Record<string, SimValue>;
      if (i < this.rows.length && this.rows[i].time === r.time) {
        this.rows[i] = { time: r.time, values: { ...this.rows[i].values, ...values } };
      } else {
        this.rows.splice(i, 0, { time: r.time, values: { ...values } });
      }
    }
  }
}
