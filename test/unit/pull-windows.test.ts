import { describe, expect, test } from 'vitest';
import { splitWindows, windowKey } from '../../src/pull/windows.js';
import { parseInstant } from '../../src/cli/instant.js';

const H = 3_600_000;
const D = 24 * H;
const T0 = Date.UTC(2026, 0, 1);

describe('splitWindows', () => {
  test.each([
    [
      'aligned days',
      T0,
      T0 + 2 * D,
      D,
      undefined,
      [
        [T0, T0 + D],
        [T0 + D, T0 + 2 * D],
      ],
    ],
    [
      'partial first and last',
      T0 + 5 * H,
      T0 + D + 3 * H,
      D,
      undefined,
      [
        [T0 + 5 * H, T0 + D],
        [T0 + D, T0 + D + 3 * H],
      ],
    ],
    ['inside one window', T0 + H, T0 + 2 * H, D, undefined, [[T0 + H, T0 + 2 * H]]],
    ['empty range', T0, T0, D, undefined, []],
    ['reversed range', T0 + H, T0, D, undefined, []],
    [
      'local midnights at UTC+8',
      T0,
      T0 + D,
      D,
      () => 8 * H,
      [
        [T0, T0 + 16 * H],
        [T0 + 16 * H, T0 + D],
      ],
    ],
  ] as const)('%s', (_name, from, to, w, offset, expected) => {
    expect(splitWindows(from, to, w, offset).map((x) => [x.from, x.to])).toEqual(expected);
  });

  test('two overlapping requests share their full windows', () => {
    const a = splitWindows(T0 + 3 * H, T0 + 3 * D + 2 * H, D).slice(1, 3);
    const b = splitWindows(T0 + 20 * H, T0 + 3 * D + H, D).slice(1, 3);
    expect(b).toEqual(a);
  });

  test.each([0, -1, 1.5, Number.NaN])('refuses window length %s', (w) => {
    expect(() => splitWindows(T0, T0 + D, w)).toThrow(/window length/);
  });
});

describe('windowKey', () => {
  test('holds no colon (a BullMQ id), and device ids that differ never share a key', () => {
    const ids = ['dev-1', 'a:b:c', 'with space/slash', 'ünïcødé', '', 'a|b', 'a', 'A', 'bf|a'];
    const keys = ids.map((id) => windowKey(id, { from: T0, to: T0 + D }));
    for (const key of keys) expect(key).not.toContain(':');
    expect(new Set(keys).size).toBe(ids.length);
  });
  test('different devices and windows differ', () => {
    expect(windowKey('a', { from: 1, to: 2 })).not.toBe(windowKey('b', { from: 1, to: 2 }));
    expect(windowKey('a', { from: 1, to: 2 })).not.toBe(windowKey('a', { from: 1, to: 3 }));
  });
});

describe('parseInstant', () => {
  test.each([
    ['2026-01-02T03:04:05Z', Date.UTC(2026, 0, 2, 3, 4, 5)],
    ['2026-01-02T03:04:05.250Z', Date.UTC(2026, 0, 2, 3, 4, 5, 250)],
    ['2026-01-02T11:04:05+08:00', Date.UTC(2026, 0, 2, 3, 4, 5)],
    ['2026-01-02T11:04:05+0800', Date.UTC(2026, 0, 2, 3, 4, 5)],
    ['2026-01-01T22:00-05:00', Date.UTC(2026, 0, 2, 3, 0, 0)],
    ['2026-01-02', Date.UTC(2026, 0, 1, 16)], // platform-local midnight
    ['2026-01-02T08:30', Date.UTC(2026, 0, 2, 0, 30)],
    ['2026-01-02 08:30:00', Date.UTC(2026, 0, 2, 0, 30)],
  ])('%s', (text, expected) => {
    expect(parseInstant(text, 'Asia/Shanghai')).toBe(expected);
  });
  test.each(['yesterday', '2026-13-01', '2026-02-30', '2026-01-02T25:00', '1700000000000', ''])(
    'refuses %j naming what is wrong',
    (text) => {
      expect(() => parseInstant(text, 'Asia/Shanghai', '--from')).toThrow(/^--from: /);
    },
  );
});
