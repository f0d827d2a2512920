import { describe, expect, test } from 'vitest';
import { DeviceSeries } from '../../src/simulator/data-generator.js';
import { DEFAULT_FIELDS } from '../../src/simulator/field-generators.js';
import { readPage, servePage } from '../../src/simulator/history.js';
import { resolveHistoryReading } from '../../src/simulator/index.js';
import type { SimDeviceState, SimState } from '../../src/simulator/state.js';
import type { HistoryReading, SimRow } from '../../src/simulator/types.js';

const FROM = Date.UTC(2026, 0, 1);
const HOUR = 3_600_000;

function sim(reading: Partial<HistoryReading>, sameMsRate = 0, extra: SimRow[] = []) {
  const device = { id: 'd', key: 'k', fields: [...DEFAULT_FIELDS], cadenceSec: 30, online: true, offline: [] };
  const series = new DeviceSeries(device, { seed: 9, gapRate: 0, fullRowEvery: 5, sameMsRate });
  series.add(extra);
  const state = {
    range: { from: FROM, to: FROM + HOUR },
    followClock: false,
    now: () => 0,
    history: resolveHistoryReading({ history: reading }),
  } as unknown as SimState;
  const dev = { device, series } as SimDeviceState;
  const all = readPage(state, dev, { lo: -Infinity, hi: Infinity, ascending: true, limit: Infinity }).rows;
  const page = (cursor?: number, limit = 10, lo = FROM, hi = FROM + HOUR) =>
    servePage(state, dev, { lo, hi, ascending: true, cursor, limit });
  return { all, page };
}

describe('simulator history readings', () => {
  test('next: the cursor is the next row, the next page starts at it', () => {
    const { all, page } = sim({ cursor: 'next' });
    const p1 = page();
    expect(p1.rows).toEqual(all.slice(0, 10));
    expect(p1.cursor).toBe(all[10].time);
    expect(page(p1.cursor).rows[0]).toEqual(all[10]);
  });

  test('last-inclusive repeats the last row; last-exclusive starts after it; first-row names the first row; none has no cursor', () => {
    const inc = sim({ cursor: 'last-inclusive' });
    expect(inc.page().cursor).toBe(inc.all[9].time);
    expect(inc.page(inc.all[9].time).rows[0]).toEqual(inc.all[9]);
    const exc = sim({ cursor: 'last-exclusive' });
    expect(exc.page().cursor).toBe(exc.all[9].time);
    expect(exc.page(exc.all[9].time).rows[0]).toEqual(exc.all[10]);
    const first = sim({ cursor: 'first-row' });
    expect(first.page().cursor).toBe(first.all[0].time);
    expect(first.page(first.page().cursor).rows).toEqual(first.page().rows);
    const none = sim({ cursor: 'none' });
    expect(none.page().rows).toHaveLength(10);
    expect(none.page().cursor).toBeUndefined();
  });

  test('limit in datapoints: whole rows while their values fit, at least one row', () => {
    const { all, page } = sim({ limit: 'datapoints' });
    const p = page(undefined, 12);
    const width = (r: SimRow) => Object.keys(r.values).length;
    expect(p.rows).toEqual(all.slice(0, p.rows.length));
    const used = p.rows.reduce((n, r) => n + width(r), 0);
    expect(used).toBeLessThanOrEqual(12);
    expect(used + width(all[p.rows.length])).toBeGreaterThan(12);
    expect(p.rows.length).toBeLessThan(12);
    expect(page(undefined, 1).rows).toEqual([all[0]]); // wider than the limit: still served alone
  });

  test('start and end bounds, inclusive or exclusive', () => {
    const edge = [
      { time: FROM + 60_000, values: { temp: 1 } },
      { time: FROM + 120_000, values: { temp: 2 } },
    ];
    const range = (r: Partial<HistoryReading>) =>
      sim(r, 0, edge)
        .page(undefined, 100, FROM + 60_000, FROM + 120_000)
        .rows.map((x) => x.time);
    const inside = (rows: number[]) => [rows[0], rows[rows.length - 1]];
    expect(inside(range({}))[0]).toBe(FROM + 60_000);
    expect(range({})).not.toContain(FROM + 120_000);
    expect(range({ start: 'exclusive' })).not.toContain(FROM + 60_000);
    expect(range({ end: 'inclusive' })).toContain(FROM + 120_000);
  });

  test('rows sharing a millisecond: deterministic, distinct, and together the row they were split from', () => {
    const split = sim({}, 0.3).all;
    const whole = sim({}, 0).all;
    expect(sim({}, 0.3).all).toEqual(split);
    const times = new Map<number, SimRow[]>();
    for (const r of split) times.set(r.time, [...(times.get(r.time) ?? []), r]);
    const shared = [...times.values()].filter((rs) => rs.length > 1);
    expect(shared.length).toBeGreaterThan(whole.length * 0.2);
    expect(shared.some((rs) => rs.length === 3)).toBe(true);
    for (const rs of shared) {
      const original = whole.find((w) => w.time === rs[0].time)!;
      // every field of the original row is served, by one part or another
      expect(Object.keys(Object.assign({}, ...rs.map((r) => r.values))).sort()).toEqual(
        Object.keys(original.values).sort(),
      );
      expect(new Set(rs.map((r) => JSON.stringify(r.values))).size).toBe(rs.length);
    }
    // a page may end between rows of one millisecond: the next-row cursor then repeats that time
    const { page } = sim({ cursor: 'next' }, 0.5);
    let cursor: number | undefined;
    let straddled = false;
    for (let i = 0; i < 30; i++) {
      const p = page(cursor, 7);
      if (p.cursor === undefined) break;
      if (p.cursor === p.rows[p.rows.length - 1].time) straddled = true;
      cursor = p.cursor;
    }
    expect(straddled).toBe(true);
  });
});
