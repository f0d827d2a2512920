import { describe, expect, test } from 'vitest';
import type { DataRow, HistoryPage, HistoryQuery, PlatformClient } from '../../src/platform/api.js';
import { HistoryWalkError, walkHistory, type WalkedPage } from '../../src/platform/history-walker.js';
import { walkAll } from '../helpers/walk.js';
import { mergeBehaviour } from '../../src/platform/platform-profile.js';
import { DeviceSeries } from '../../src/simulator/data-generator.js';
import { DEFAULT_FIELDS } from '../../src/simulator/field-generators.js';
import { servePage, readPage } from '../../src/simulator/history.js';
import { resolveHistoryReading } from '../../src/simulator/index.js';
import type { SimDeviceState, SimState } from '../../src/simulator/state.js';
import type { CursorReading, HistoryReading, SimRow } from '../../src/simulator/types.js';

const device = { id: 'dev-1', key: 'key-0001' };
const FROM = Date.UTC(2026, 0, 1);
const HOUR = 3_600_000;

/**
 * The simulator's own paging logic (servePage) as an in-memory platform: every reading of the
 * vendor document, without HTTP. Counts the requests and remembers them.
 */
function platform(
  reading: Partial<HistoryReading>,
  opts: { sameMsRate?: number; sameMsRepeat?: boolean; cadenceSec?: number; fields?: string[]; extra?: SimRow[] } = {},
) {
  const sim = {
    id: device.id,
    key: device.key,
    fields: opts.fields ?? [...DEFAULT_FIELDS],
    cadenceSec: opts.cadenceSec ?? 20,
    online: true,
    offline: [],
  };
  const series = new DeviceSeries(sim, {
    seed: 5,
    gapRate: 0.02,
    fullRowEvery: 6,
    sameMsRate: opts.sameMsRate ?? 0,
    sameMsRepeat: opts.sameMsRepeat,
  });
  if (opts.extra) series.add(opts.extra);
  const state = {
    range: { from: FROM - HOUR, to: FROM + 3 * HOUR },
    followClock: false,
    now: () => 0,
    history: resolveHistoryReading({ history: reading }),
  } as unknown as SimState;
  const dev = { device: sim, series } as SimDeviceState;
  const queries: HistoryQuery[] = [];
  const client: Pick<PlatformClient, 'history'> = {
    async history(_d, q) {
      queries.push(q);
      const order = state.history.order;
      const ascending = order === 'newest-first' ? false : order === 'inverted' ? q.first !== 1 : q.first === 1;
      const page = servePage(state, dev, {
        lo: q.start!,
        hi: q.end!,
        ascending,
        cursor: q.cursor,
        limit: q.limit!,
        ids: q.ids,
      });
      return { rows: page.rows, unreadable: [], cursor: page.cursor };
    },
  };
  /** what the platform holds in [from, to), time ascending */
  const holds = (from: number, to: number) =>
    readPage({ ...state, history: { ...state.history, pageCap: 0 } }, dev, {
      lo: from,
      hi: to,
      ascending: true,
      limit: Infinity,
    }).rows;
  return { client, queries, holds };
}

/** Rows of one millisecond merged as InfluxDB does: union of fields, the later row wins. */
function merged(rows: DataRow[]): Map<number, Record<string, unknown>> {
  // InfluxDB keeps, per time and field, the value written last
  const out = new Map<number, Record<string, unknown>>();
  for (const r of rows) out.set(r.time, { ...(out.get(r.time) ?? {}), ...r.values });
  return out;
}

const CURSORS: CursorReading[] = ['next', 'last-inclusive', 'last-exclusive', 'first-row', 'none'];
const VARIANTS: Array<{ name: string; reading: Partial<HistoryReading>; sameMsRate: number }> = [
  { name: 'rows, inclusive start', reading: {}, sameMsRate: 0 },
  { name: 'datapoints, same-ms rows', reading: { limit: 'datapoints' }, sameMsRate: 0.3 },
  {
    name: 'exclusive start, inclusive end, same-ms rows',
    reading: { start: 'exclusive', end: 'inclusive' },
    sameMsRate: 0.3,
  },
  {
    name: 'datapoints, exclusive both, same-ms rows',
    reading: { limit: 'datapoints', start: 'exclusive', end: 'exclusive' },
    sameMsRate: 0.5,
  },
];

// what a platform may do beyond the readings: pages newest first whatever `first` asks (or `first`
// read the other way round), a cap of its own below `limit`, A,B,A in one millisecond
const SHAPES: Array<{
  name: string;
  reading: Partial<HistoryReading>;
  sameMsRate: number;
  sameMsRepeat?: boolean;
  pageRows: number;
}> = [
  {
    name: 'newest first whatever first asks, same-ms rows',
    reading: { order: 'newest-first' },
    sameMsRate: 0.3,
    pageRows: 37,
  },
  {
    name: 'first read inverted, datapoints, exclusive both',
    reading: { order: 'inverted', limit: 'datapoints', start: 'exclusive', end: 'exclusive' },
    sameMsRate: 0.3,
    pageRows: 10,
  },
  { name: 'a page cap of 13 below limit 37, same-ms rows', reading: { pageCap: 13 }, sameMsRate: 0.3, pageRows: 13 },
  {
    name: 'page cap, newest first, inclusive end',
    reading: { pageCap: 11, order: 'newest-first', end: 'inclusive' },
    sameMsRate: 0.3,
    pageRows: 11,
  },
  {
    name: 'A,B,A in one millisecond across page boundaries',
    reading: {},
    sameMsRate: 0.5,
    sameMsRepeat: true,
    pageRows: 37,
  },
  {
    name: 'A,B,A, newest first, page cap',
    reading: { order: 'newest-first', pageCap: 9 },
    sameMsRate: 0.5,
    sameMsRepeat: true,
    pageRows: 9,
  },
];

describe('walkHistory whatever the shape of the answers', () => {
  const from = FROM;
  const to = FROM + 2 * HOUR;
  for (const cursor of ['next', 'last-inclusive', 'none'] as CursorReading[]) {
    for (const v of SHAPES) {
      test(`cursor ${cursor}, ${v.name}: the platform's last value at every millisecond, and an end proven by a range answer`, async () => {
        const p = platform({ ...v.reading, cursor }, { sameMsRate: v.sameMsRate, sameMsRepeat: v.sameMsRepeat });
        const got = await walkAll(p.client, device, { from, to, limit: 37 });
        const inWindow = got.rows.filter((r) => r.time >= from && r.time < to);
        const expected = p.holds(from, to);
        expect(expected.length).toBeGreaterThan(300);
        expect(merged(inWindow)).toEqual(merged(expected));
        // a row is yielded again only where a page re-served the millisecond it was cut in
        expect(inWindow.length).toBeLessThanOrEqual(expected.length + 4 * got.pages);
        expect(['complete', 'reached-end']).toContain(got.end);
        expect(p.queries[p.queries.length - 1].cursor).toBeUndefined();
        expect(p.queries.length).toBeLessThan((expected.length / v.pageRows) * 1.6 + 4);
      });
    }
  }

  test('a page in no time order fails the window, naming device, window and where the order breaks', async () => {
    const client = {
      async history() {
        return { rows: [row(1), row(5), row(3)], unreadable: [] };
      },
    };
    await expect(walkAll(client, device, { from: 0, to: 10, limit: 50 })).rejects.toThrow(
      /^device dev-1 window 1970-01-01T00:00:00\.000Z\.\.1970-01-01T00:00:00\.010Z: history walk cannot make progress: a page from .* is in no time order \(row 2 .* after rising times\)/,
    );
  });
});

describe('walkHistory under every reading of the vendor document', () => {
  const from = FROM;
  const to = FROM + 2 * HOUR;
  for (const cursor of CURSORS) {
    for (const v of VARIANTS) {
      test(`cursor ${cursor}, ${v.name}: every row of [from, to) and nothing else, merged as InfluxDB merges`, async () => {
        const p = platform({ ...v.reading, cursor }, { sameMsRate: v.sameMsRate });
        const got = await walkAll(p.client, device, { from, to, limit: 37 });
        const inWindow = got.rows.filter((r) => r.time >= from && r.time < to);
        const expected = p.holds(from, to);
        expect(expected.length).toBeGreaterThan(300);
        expect(merged(inWindow)).toEqual(merged(expected));
        // nothing new from a re-read: no row of the window is yielded twice
        expect(inWindow.length).toBe(expected.length);
        expect(['complete', 'reached-end']).toContain(got.end);
        // the walk ends on a range request, never on a cursor answer
        expect(p.queries[p.queries.length - 1].cursor).toBeUndefined();
        // cost: about one request per page, plus re-reads of the boundary millisecond
        expect(p.queries.length).toBeLessThan(
          (expected.length / 37) * (v.reading.limit === 'datapoints' ? 6 : 1.6) + 3,
        );
      });
    }
  }

  test('the row at `from` is asked for with a start 1 ms before it (an exclusive start loses nothing)', async () => {
    const p = platform({ start: 'exclusive' }, { extra: [{ time: FROM, values: { temp: 99 } }] });
    const got = await walkAll(p.client, device, { from: FROM, to: FROM + HOUR, limit: 50 });
    expect(p.queries[0]).toMatchObject({ start: FROM - 1, end: FROM + HOUR, first: 1, limit: 50 });
    expect(got.rows.find((r) => r.time === FROM)?.values).toMatchObject({ temp: 99 });
  });

  test('reading next follows the cursor and confirms the end with one range request', async () => {
    const p = platform({ cursor: 'next' });
    const got = await walkAll(p.client, device, { from: FROM, to: FROM + HOUR, limit: 40 });
    const withCursor = p.queries.filter((q) => q.cursor !== undefined).length;
    expect(withCursor).toBe(p.queries.length - 2); // the first page and the confirmation are ranges
    expect(got.end).toBe('complete');
  });

  test('more rows in one millisecond than a page holds: fails naming device, window and reason; bounded', async () => {
    const t = FROM + 10 * 60_000;
    // 6 rows at one millisecond (extra rows merged into one, so split them across fields and ms-rate 1)
    const p = platform({ cursor: 'none' }, { fields: ['a', 'b', 'c', 'd', 'e', 'f'], sameMsRate: 1, cadenceSec: 60 });
    const walk = walkAll(p.client, device, { from: FROM, to: t, limit: 1 });
    await expect(walk).rejects.toThrow(HistoryWalkError);
    await expect(walkAll(p.client, device, { from: FROM, to: t, limit: 1 })).rejects.toThrow(
      /^device dev-1 window 2026-01-01T00:00:00\.000Z\.\.2026-01-01T00:10:00\.000Z: history walk cannot make progress: .*more rows share that time than one page holds/,
    );
    expect(p.queries.length).toBeLessThan(10);
  });
});

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

describe('walkHistory details', () => {
  test('a short page is not the end when limit may count datapoints: 3 rows of 2 points with limit 7 is possibly truncated', async () => {
    const client = scripted([
      { rows: [row(1, { a: 1, b: 1 }), row(2, { a: 2, b: 2 }), row(3, { a: 3, b: 3 })], unreadable: [] },
      { rows: [row(3, { a: 3, b: 3 }), row(4, { a: 4 })], unreadable: [] },
      // a short page proves nothing either: only an answer with nothing new past 4 ends the walk
      { rows: [row(4, { a: 4 })], unreadable: [] },
    ]);
    const { pages, end } = await pagesOf(walkHistory(client, device, { from: 1, to: 10, limit: 7 }));
    expect(end).toBe('complete');
    expect(pages.map((p) => p.rows.map((r) => r.time))).toEqual([[1, 2, 3], [4], []]);
    expect(pages[1].duplicatesDropped).toBe(1);
    expect(pages.map((p) => p.provenThrough)).toEqual([3, 4, 4]);
    expect(client.queries.map((q) => [q.start, q.cursor])).toEqual([
      [0, undefined],
      [2, undefined],
      [3, undefined],
    ]);
  });

  test('a row sharing a millisecond that disagrees with a held one is kept, and the held one carried', async () => {
    const two = (t: number) => row(t, { a: t, b: t });
    const client = scripted([
      // 10 datapoints with limit 10: possibly truncated
      { rows: [two(1), two(2), two(3), two(4), row(5, { a: 5, b: 1 })], unreadable: [] },
      { rows: [row(5, { a: 5, b: 1 }), row(5, { b: 7 }), row(5, { c: 1 })], unreadable: [] },
      { rows: [row(5, { a: 5, b: 1 }), row(5, { b: 7 }), row(5, { c: 1 })], unreadable: [] },
    ]);
    const { pages, end } = await pagesOf(walkHistory(client, device, { from: 1, to: 10, limit: 10 }));
    expect(end).toBe('complete');
    expect(client.queries.map((q) => q.start)).toEqual([0, 4, 4]);
    expect(pages[2].rows).toEqual([]);
    expect(pages[2].duplicatesDropped).toBe(3);
    expect(pages[1].rows).toEqual([row(5, { b: 7 }), row(5, { c: 1 })]);
    expect(pages[1].carried).toEqual([row(5, { a: 5, b: 1 })]);
    expect(pages[1].duplicatesDropped).toBe(1);
  });

  test('unreadable rows are passed on and count as the widest row', async () => {
    const client = scripted([
      { rows: [row(1)], unreadable: [{ reason: 'bad timestamp', raw: { timestamp: 'x' } }] },
      { rows: [row(1)], unreadable: [{ reason: 'bad timestamp', raw: { timestamp: 'x' } }] },
    ]);
    // 1 point + 1 unreadable (as 1) + room for 1 > limit 2: possibly truncated; the re-read brings nothing new
    await expect(walkAll(client, device, { from: 1, to: 10, limit: 2 })).rejects.toThrow(/cannot make progress/);
    const again = { rows: [row(1)], unreadable: [{ reason: 'bad', raw: 1 }] };
    // the re-read is as large as the largest page (2): [1, 10] and [2, 10] confirm the end
    const confirming = scripted([again, { ...again }, { ...again }, { rows: [], unreadable: [] }]);
    const ok = await walkAll(confirming, device, { from: 1, to: 10, limit: 5 });
    expect(ok.unreadable).toEqual([{ reason: 'bad', raw: 1 }]);
    expect(confirming.queries.map((q) => q.start)).toEqual([0, 0, 1, 2]);
  });

  test('a resumed walk asks from 1 ms before its saved position, and a failure names the whole window', async () => {
    const same = { rows: [row(5, { a: 1 }), row(5, { a: 2 })], unreadable: [] };
    const client = scripted([same, { ...same }]);
    const err = await walkAll(client, device, { from: 0, to: 10, limit: 2, resumeAt: 5 }).catch((e) => e);
    expect(client.queries.map((q) => q.start)).toEqual([4, 4]);
    expect(err.message).toMatch(
      /^device dev-1 window 1970-01-01T00:00:00\.000Z\.\.1970-01-01T00:00:00\.010Z: history walk cannot make progress/,
    );
  });

  test('passes ids and the call options through, and the error is not retryable', async () => {
    const calls: unknown[] = [];
    const client: Pick<PlatformClient, 'history'> = {
      async history(_d, q, o) {
        calls.push([q.ids, o]);
        return { rows: [row(5), row(5, { t: 9 })], unreadable: [] };
      },
    };
    const err = await walkAll(client, device, {
      from: 1,
      to: 10,
      limit: 2,
      ids: ['t'],
      call: { useReserve: true },
    }).catch((e) => e);
    expect(err).toBeInstanceOf(HistoryWalkError);
    expect(err.retryable).toBe(false);
    expect(calls[0]).toEqual([['t'], { useReserve: true }]);
  });
});

describe('what walks learn about the platform', () => {
  test('a later walk keeps the known cap and order unless it saw otherwise', () => {
    const known = { order: 'newest-first' as const, pageCap: 1000, largestPage: 1000 };
    // a walk over a sparse window sees neither a cap nor an order: nothing is forgotten
    expect(mergeBehaviour(known, { largestPage: 12 })).toEqual(known);
    // a larger cap seen (or a page larger than the known cap): the platform no longer caps there
    expect(mergeBehaviour(known, { order: 'newest-first', pageCap: 3000, largestPage: 3000 })).toEqual({
      order: 'newest-first',
      pageCap: 3000,
      largestPage: 3000,
    });
    expect(mergeBehaviour(known, { order: 'asked', largestPage: 6000 })).toEqual({
      order: 'asked',
      pageCap: undefined,
      largestPage: 6000,
    });
    expect(mergeBehaviour(undefined, { order: 'asked', pageCap: 500, largestPage: 500 })).toEqual({
      order: 'asked',
      pageCap: 500,
      largestPage: 500,
    });
  });
});
