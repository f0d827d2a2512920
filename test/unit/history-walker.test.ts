import { describe, expect, test } from 'vitest';
import type { DataRow, HistoryPage, HistoryQuery, PlatformClient } from '../../src/platform/api.js';
import { collectHistory, walkHistory, type WalkedPage } from '../../src/platform/history-walker.js';

const device = { id: 'dev-1', key: 'key-0001' };

/** The vendor side, scripted: the pages it answers in order, and the queries it was asked. */
function scripted(pages: HistoryPage[]): Pick<PlatformClient, 'history'> & { queries: HistoryQuery[] } {
  const queries: HistoryQuery[] = [];
  return {
    queries,
    async history(_device, query) {
      queries.push(query);
      const page = pages.shift();
      if (!page) throw new Error(`asked for a page the script does not have (query ${JSON.stringify(query)})`);
      return page;
    },
  };
}

const row = (time: number, values: Record<string, unknown> = { t: time % 100 }): DataRow => ({ time, values });

async function pagesOf(iter: AsyncGenerator<WalkedPage, unknown>): Promise<{ pages: WalkedPage[]; end: unknown }> {
  const pages: WalkedPage[] = [];
  for (;;) {
    const n = await iter.next();
    if (n.done) return { pages, end: n.value };
    pages.push(n.value);
  }
}

describe('walkHistory', () => {
  test('uses limit 6000 oldest-first by default and follows the cursor until a page has none', async () => {
    const client = scripted([
      { rows: [row(1), row(2)], unreadable: [], cursor: 3 },
      { rows: [row(3), row(4)], unreadable: [], cursor: 5 },
      { rows: [row(5)], unreadable: [] },
    ]);
    const { pages, end } = await pagesOf(walkHistory(client, device, { from: 0, to: 10, ids: ['t'] }));
    expect(end).toBe('no-cursor');
    expect(pages.map((p) => p.rows.map((r) => r.time))).toEqual([[1, 2], [3, 4], [5]]);
    expect(pages.map((p) => [p.index, p.requestCursor, p.done])).toEqual([
      [0, undefined, undefined],
      [1, 3, undefined],
      [2, 5, 'no-cursor'],
    ]);
    expect(client.queries).toEqual([
      { ids: ['t'], start: 0, end: 10, first: 1, limit: 6000, cursor: undefined },
      { ids: ['t'], start: 0, end: 10, first: 1, limit: 6000, cursor: 3 },
      { ids: ['t'], start: 0, end: 10, first: 1, limit: 6000, cursor: 5 },
    ]);
  });

  test('stops on an empty page without yielding it', async () => {
    const client = scripted([
      { rows: [row(1)], unreadable: [], cursor: 2 },
      { rows: [], unreadable: [], cursor: 3 },
    ]);
    const { pages, end } = await pagesOf(walkHistory(client, device, { limit: 10 }));
    expect(end).toBe('empty-page');
    expect(pages.map((p) => p.rows.map((r) => r.time))).toEqual([[1]]);
    expect(client.queries.map((q) => [q.limit, q.cursor])).toEqual([
      [10, undefined],
      [10, 2],
    ]);
  });

  test('an empty first page yields nothing', async () => {
    const { pages, end } = await pagesOf(walkHistory(scripted([{ rows: [], unreadable: [], cursor: 9 }]), device));
    expect(pages).toEqual([]);
    expect(end).toBe('empty-page');
  });

  test.each([
    ['the same cursor again', 1 as const, [5, 5]],
    ['a cursor going back (oldest first)', 1 as const, [5, 4]],
    ['a cursor going up (newest first)', 0 as const, [5, 6]],
  ])('stops on %s', async (_name, first, cursors) => {
    const client = scripted([
      { rows: [row(10)], unreadable: [], cursor: cursors[0] },
      { rows: [row(20)], unreadable: [], cursor: cursors[1] },
      { rows: [row(30)], unreadable: [], cursor: 1 },
    ]);
    const { pages, end } = await pagesOf(walkHistory(client, device, { first }));
    expect(end).toBe('cursor-stuck');
    expect(pages.map((p) => [p.rows[0].time, p.done])).toEqual([
      [10, undefined],
      [20, 'cursor-stuck'],
    ]);
    expect(client.queries).toHaveLength(2);
  });

  test('newest first follows a shrinking cursor', async () => {
    const client = scripted([
      { rows: [row(9), row(8)], unreadable: [], cursor: 7 },
      { rows: [row(7), row(6)], unreadable: [], cursor: 5 },
      { rows: [], unreadable: [] },
    ]);
    const { rows, pages, end } = await collectHistory(client, device, { first: 0 });
    expect(rows.map((r) => r.time)).toEqual([9, 8, 7, 6]);
    expect(pages).toBe(2);
    expect(end).toBe('empty-page');
    expect(client.queries.map((q) => [q.first, q.cursor])).toEqual([
      [0, undefined],
      [0, 7],
      [0, 5],
    ]);
  });

  test('drops a row that reappears at a page boundary, keeps a different row at the same time', async () => {
    const client = scripted([
      { rows: [row(1, { a: 1 }), row(2, { a: 2, b: 'x' })], unreadable: [], cursor: 2 },
      // the boundary row again (same values, keys in another order), and a different row at t=2
      { rows: [row(2, { b: 'x', a: 2 }), row(2, { a: 3 }), row(3, { a: 4 })], unreadable: [], cursor: 4 },
      { rows: [row(3, { a: 4 })], unreadable: [] },
    ]);
    const { pages } = await pagesOf(walkHistory(client, device));
    expect(pages.map((p) => p.rows)).toEqual([
      [row(1, { a: 1 }), row(2, { a: 2, b: 'x' })],
      [row(2, { a: 3 }), row(3, { a: 4 })],
      [],
    ]);
    expect(pages.map((p) => p.duplicatesDropped)).toEqual([0, 1, 1]);
  });

  test('newest first: the boundary row repeated is dropped, another row at the same time is kept', async () => {
    const client = scripted([
      { rows: [row(9, { a: 9 }), row(8, { a: 8 })], unreadable: [], cursor: 8 },
      { rows: [row(8, { a: 8 }), row(8, { a: -8 }), row(7, { a: 7 })], unreadable: [], cursor: 7 },
      { rows: [], unreadable: [] },
    ]);
    const { pages } = await pagesOf(walkHistory(client, device, { first: 0 }));
    expect(pages.map((p) => p.rows)).toEqual([
      [row(9, { a: 9 }), row(8, { a: 8 })],
      [row(8, { a: -8 }), row(7, { a: 7 })],
    ]);
    expect(pages.map((p) => p.duplicatesDropped)).toEqual([0, 1]);
  });

  test('a page that does not overlap the previous one in time comes through as it is', async () => {
    const second = [row(3, { a: 3 }), row(4, { a: 4 })];
    const client = scripted([
      { rows: [row(1, { a: 1 }), row(2, { a: 2 })], unreadable: [], cursor: 2 },
      { rows: second, unreadable: [] },
    ]);
    const { pages } = await pagesOf(walkHistory(client, device));
    expect(pages[1].rows).toBe(second);
    expect(pages[1].duplicatesDropped).toBe(0);
  });

  test('repeats are found anywhere in the overlap, in pages out of order', async () => {
    const client = scripted([
      // a page whose rows are not sorted: the repeats of t=5 and t=3 are not at its end
      { rows: [row(5, { a: 5 }), row(1, { a: 1 }), row(3, { a: 3 }), row(2, { a: 2 })], unreadable: [], cursor: 5 },
      { rows: [row(6, { a: 6 }), row(3, { a: 3 }), row(5, { a: 5 }), row(4, { a: 4 }), row(3, { a: 33 })], unreadable: [] },
    ]);
    const { pages } = await pagesOf(walkHistory(client, device));
    expect(pages[1].rows).toEqual([row(6, { a: 6 }), row(4, { a: 4 }), row(3, { a: 33 })]);
    expect(pages[1].duplicatesDropped).toBe(2);
  });

  test('a row repeated twice within the new page is dropped both times, a value change is kept', async () => {
    const client = scripted([
      { rows: [row(1, { a: 1 }), row(2, { a: 2, b: null })], unreadable: [], cursor: 2 },
      { rows: [row(2, { a: 2, b: null }), row(2, { a: 2, b: null }), row(2, { a: 2 }), row(3, { a: 3 })], unreadable: [] },
    ]);
    const { pages } = await pagesOf(walkHistory(client, device));
    expect(pages[1].rows).toEqual([row(2, { a: 2 }), row(3, { a: 3 })]);
    expect(pages[1].duplicatesDropped).toBe(2);
  });

  test('a row seen two pages earlier is not compared (only adjacent pages overlap)', async () => {
    const client = scripted([
      { rows: [row(1, { a: 1 })], unreadable: [], cursor: 2 },
      { rows: [row(2, { a: 2 })], unreadable: [], cursor: 3 },
      { rows: [row(1, { a: 1 })], unreadable: [] },
    ]);
    const { rows } = await collectHistory(client, device);
    expect(rows).toEqual([row(1, { a: 1 }), row(2, { a: 2 }), row(1, { a: 1 })]);
  });

  test('unreadable rows are kept and count as data', async () => {
    const bad = { reason: 'unreadable platform timestamp "x"', raw: { timestamp: 'x', a: 1 } };
    const client = scripted([
      { rows: [], unreadable: [bad], cursor: 5 },
      { rows: [row(6)], unreadable: [] },
    ]);
    const { rows, unreadable, pages } = await collectHistory(client, device);
    expect(unreadable).toEqual([bad]);
    expect(rows).toEqual([row(6)]);
    expect(pages).toBe(2);
  });

  test('resumes from a given cursor and passes call options', async () => {
    const calls: unknown[] = [];
    const client: Pick<PlatformClient, 'history'> = {
      async history(_d, q, o) {
        calls.push([q.cursor, o?.useReserve]);
        return { rows: [row(100)], unreadable: [] };
      },
    };
    const { rows } = await collectHistory(client, device, { cursor: 99, call: { useReserve: true } });
    expect(rows).toEqual([row(100)]);
    expect(calls).toEqual([[99, true]]);
  });

  test('an error from the platform ends the walk with that error', async () => {
    const client = scripted([{ rows: [row(1)], unreadable: [], cursor: 2 }]);
    const walk = walkHistory(client, device);
    expect((await walk.next()).value).toMatchObject({ index: 0 });
    await expect(walk.next()).rejects.toThrow('asked for a page the script does not have');
  });
});
