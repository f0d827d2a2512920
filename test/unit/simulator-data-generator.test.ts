import { describe, expect, test } from 'vitest';
import { DeviceSeries } from '../../src/simulator/data-generator.js';
import { DEFAULT_FIELDS } from '../../src/simulator/field-generators.js';
import type { SimDevice, SimRow } from '../../src/simulator/types.js';

const FROM = Date.UTC(2024, 0, 1);
const DAY = 86_400_000;

function device(over: Partial<SimDevice> = {}): SimDevice {
  return { id: 'dev-1', key: 'k', fields: [...DEFAULT_FIELDS], cadenceSec: 60, online: true, offline: [], ...over };
}

function collect(
  s: DeviceSeries,
  lo: number,
  hi: number,
  ascending = true,
  genLo = FROM,
  genHi = FROM + 2 * DAY,
): SimRow[] {
  const out: SimRow[] = [];
  s.scan(lo, hi, genLo, genHi, ascending, (r) => {
    out.push(r);
    return true;
  });
  return out;
}

describe('DeviceSeries', () => {
  const opts = { seed: 1, gapRate: 0.01, fullRowEvery: 10 };

  test('any range is the matching slice of the whole, in both directions', () => {
    const s = new DeviceSeries(device(), opts);
    const all = collect(s, -Infinity, Infinity);
    expect(all.length).toBeGreaterThan(2800);
    expect(all.every((r, i) => i === 0 || r.time > all[i - 1].time)).toBe(true);
    expect(all[0].time).toBeGreaterThanOrEqual(FROM);
    expect(all.at(-1)!.time).toBeLessThan(FROM + 2 * DAY);
    for (const [lo, hi] of [
      [FROM + 12_345, FROM + 3_600_000],
      [FROM + DAY - 1, FROM + DAY + 1],
      [FROM + 1000 * 60_000 + 7, FROM + 1500 * 60_000],
    ]) {
      const slice = all.filter((r) => r.time >= lo && r.time < hi);
      expect(collect(new DeviceSeries(device(), opts), lo, hi)).toEqual(slice);
      expect(collect(s, lo, hi, false)).toEqual([...slice].reverse());
    }
  });

  test('a field is in a row when it changed since the previous row, and every field appears at least every 10 slots', () => {
    const s = new DeviceSeries(device(), { ...opts, gapRate: 0 });
    const all = collect(s, -Infinity, Infinity);
    const known: Record<string, unknown> = {};
    const lastSeen: Record<string, number> = {};
    all.forEach((r, i) => {
      for (const [k, v] of Object.entries(r.values)) {
        // a value repeated from the previous row only appears on full rows or as the heartbeat field
        if (known[k] === v && Object.keys(r.values).length < DEFAULT_FIELDS.length) expect(k).toBe('temp');
        known[k] = v;
        lastSeen[k] = i;
      }
      for (const f of DEFAULT_FIELDS) if (i >= 10) expect(i - (lastSeen[f] ?? -1)).toBeLessThanOrEqual(10);
    });
  });

  test('values depend on the seed and the device, and only on them', () => {
    const a = collect(new DeviceSeries(device(), opts), -Infinity, Infinity);
    expect(collect(new DeviceSeries(device(), opts), -Infinity, Infinity)).toEqual(a);
    expect(collect(new DeviceSeries(device(), { ...opts, seed: 2 }), -Infinity, Infinity)).not.toEqual(a);
    expect(collect(new DeviceSeries(device({ id: 'dev-2' }), opts), -Infinity, Infinity)).not.toEqual(a);
  });

  test('offline windows and gaps have no rows; gapRate 0 fills every slot', () => {
    const off: [number, number] = [FROM + 3_600_000, FROM + 5 * 3_600_000];
    const full = collect(new DeviceSeries(device({ cadenceSec: 30 }), { ...opts, gapRate: 0 }), -Infinity, Infinity);
    expect(full.length).toBe(2 * 2880);
    const s = new DeviceSeries(device({ cadenceSec: 30, offline: [off] }), { ...opts, gapRate: 0 });
    const rows = collect(s, -Infinity, Infinity);
    expect(rows.length).toBe(2 * 2880 - 4 * 120);
    expect(rows.some((r) => r.time >= off[0] && r.time < off[1])).toBe(false);
    expect(collect(s, off[0] - 60_000, off[1] + 60_000, false).length).toBe(4);
  });

  test('added rows merge into generated ones and show outside the generated range', () => {
    const s = new DeviceSeries(device(), opts);
    const first = collect(s, -Infinity, Infinity)[0];
    s.add([
      { time: first.time, values: { temp: -5 } },
      { time: FROM - 1000, values: { mode: 'early' } },
      { time: FROM + 3 * DAY, values: { mode: 'late' } },
    ]);
    const all = collect(s, -Infinity, Infinity);
    expect(all[0]).toEqual({ time: FROM - 1000, values: { mode: 'early' } });
    expect(all[1]).toEqual({ time: first.time, values: { ...first.values, temp: -5 } });
    expect(all.at(-1)).toEqual({ time: FROM + 3 * DAY, values: { mode: 'late' } });
    expect(collect(s, -Infinity, Infinity, false)).toEqual([...all].reverse());
    expect(() => s.add([{ time: Number.NaN, values: {} }])).toThrow(/epoch ms/);
  });
});
