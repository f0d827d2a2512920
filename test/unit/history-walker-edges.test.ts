// Edges of the proving walk found by reading it against small platforms served by hand: a first
// page of one millisecond (its order cannot be told), and a millisecond holding more rows than the
// platform's own page cap before the walk has learned that cap. Each platform holds a handful of
// rows, serves at most `cap` rows a page, in the order given, with the range bounds given; the
// walk must land every row or fail the window naming it — never end "complete" with rows missing.
import { describe, expect, test } from 'vitest';
import type { DataRow, HistoryQuery, PlatformClient } from '../../src/platform/api.js';
import { HistoryWalkError } from '../../src/platform/history-walker.js';
import { walkAll } from '../helpers/walk.js';

const device = { id: 'edge-1', key: 'k' };

interface Shape {
  newestFirst: boolean;
  cap: number;
  endInclusive: boolean;
  /** default true */
  startInclusive?: boolean;
}

/** rows as [time, value]; values tell rows of one millisecond apart */
function fixed(rows: Array<[number, number]>, shape: Shape) {
  const held: DataRow[] = rows.map(([time, v]) => ({ time, values: { v } }));
  const queries: HistoryQuery[] = [];
  const client: Pick<PlatformClient, 'history'> = {
    async history(_d, q) {
      queries.push(q);
      const inRange = held.filter(
        (r) =>
          (shape.startInclusive === false ? r.time > q.start! : r.time >= q.start!) &&
          (shape.endInclusive ? r.time <= q.end! : r.time < q.end!),
      );
      const ordered = shape.newestFirst ? inRange.slice().reverse() : inRange;
      return { rows: ordered.slice(0, Math.min(q.limit!, shape.cap)), unreadable: [] };
    },
  };
  return { client, queries, held };
}

describe('a first page of one millisecond', () => {
  for (const shape of [
    { newestFirst: true, cap: 3, endInclusive: true },
    { newestFirst: true, cap: 3, endInclusive: false },
    { newestFirst: true, cap: 1, endInclusive: true },
  ]) {
    test(`newest first, cap ${shape.cap}, end ${shape.endInclusive ? 'inclusive' : 'exclusive'}: the older rows are found, and the window fails naming why`, async () => {
      // the window's newest millisecond fills a capped page on its own: it may hold more rows than
      // any page can show, so no walk can prove it — and rows 10 and 20 must not be taken as absent
      const p = fixed(
        [
          [10, 1],
          [20, 2],
          [50, 3],
          [50, 4],
          [50, 5],
        ],
        shape,
      );
      const got = await walkAll(p.client, device, { from: 1, to: 100, limit: 6000 }).catch((e: unknown) => e);
      expect(got).toBeInstanceOf(HistoryWalkError);
      expect((got as Error).message).toMatch(
        /^device edge-1 window .*: history walk cannot make progress: the platform served newest first and its first page held only .*, the window's newest millisecond/,
      );
    });
  }

  for (const endInclusive of [true, false]) {
    test(`oldest first, one millisecond only, end ${endInclusive ? 'inclusive' : 'exclusive'}: complete, every row in the platform's order`, async () => {
      const p = fixed(
        [
          [50, 1],
          [50, 2],
        ],
        { newestFirst: false, cap: 6000, endInclusive },
      );
      const { rows, end } = await walkAll(p.client, device, { from: 1, to: 100, limit: 6000 });
      expect(end).toBe('complete');
      expect(rows.map((r) => r.values.v)).toEqual([1, 2]);
    });
  }

  for (const [startInclusive, endInclusive] of [
    [true, true],
    [false, false],
    [true, false],
  ]) {
    test(`one row in the window, start ${startInclusive ? 'inclusive' : 'exclusive'}, end ${endInclusive ? 'inclusive' : 'exclusive'}: a probe before it, a confirmed end after it`, async () => {
      const p = fixed([[50, 1]], { newestFirst: false, cap: 6000, endInclusive, startInclusive });
      const { rows, end } = await walkAll(p.client, device, { from: 1, to: 100, limit: 6000 });
      expect(end).toBe('complete');
      expect(rows.map((r) => r.time)).toEqual([50]);
      // the probe asked [from - 1, 50] right after the first page
      expect(p.queries[1]).toMatchObject({ start: 0, end: 50 });
      // the end is confirmed from 50 (and from 51 where the start is inclusive, so 50 came again)
      expect(p.queries.at(-1)!.start).toBe(startInclusive ? 51 : 50);
    });
  }

  test('oldest first, cap 1 (never learned on a sparse device): rows after the first are found, then the window fails on the cap', async () => {
    const p = fixed(
      [
        [50, 1],
        [60, 2],
        [70, 3],
      ],
      { newestFirst: false, cap: 1, endInclusive: false },
    );
    const got = await walkAll(p.client, device, { from: 1, to: 100, limit: 6000 }).catch((e: unknown) => e);
    expect(got).toBeInstanceOf(HistoryWalkError);
    expect((got as Error).message).toContain('pages capped at 1');
    // it read past 50 before it failed: the confirming request found 60
    expect(p.queries.some((q) => q.start === 51)).toBe(true);
  });
});

describe('a millisecond holding more rows than the page cap, the cap not learned yet', () => {
  for (const endInclusive of [true, false]) {
    test(`end ${endInclusive ? 'inclusive' : 'exclusive'}: the window fails naming it, rows after it are not declared absent`, async () => {
      // 10, then four rows at 20, then 30; pages of at most 3 rows (limit 6000)
      const p = fixed(
        [
          [10, 1],
          [20, 2],
          [20, 3],
          [20, 4],
          [20, 5],
          [30, 6],
        ],
        { newestFirst: false, cap: 3, endInclusive },
      );
      const got = await walkAll(p.client, device, { from: 1, to: 100, limit: 6000 }).catch((e: unknown) => e);
      expect(got).toBeInstanceOf(HistoryWalkError);
      expect((got as Error).message).toMatch(
        /device edge-1 window .*: history walk cannot make progress: .*more rows share that time than one page holds/,
      );
      expect((got as Error).message).toContain('pages capped at 3');
    });
  }
});
