import { afterEach, describe, expect, test, vi } from 'vitest';
import type { SinkPoint, WriteOptions, WriteResult } from '../../src/influx/api.js';
import { parsePlatformTime } from '../../src/platform/timestamp.js';
import { dataPoints, ingestBackoff, pushStatusPoint } from '../../src/push/ingest.js';
import { PointBatcher } from '../../src/push/point-batcher.js';

const parseTime = (raw: string | number) => parsePlatformTime(raw, 'Asia/Shanghai');

describe('push -> points', () => {
  test('msg_type 2 rows become device_data points at platform-local time, empty rows skipped', () => {
    const points = dataPoints(
      {
        device_id: 'd1',
        device_key: 'k',
        data: [
          { timestamp: '2017-02-13T12-00-00-000', a: 1, b: 'x' },
          { timestamp: '2017-02-13T12-00-01-000' },
          { timestamp: ' 2017-02-13T12-00-02-500', c: false },
        ],
      },
      parseTime,
    );
    expect(points).toEqual([
      { measurement: 'device_data', deviceId: 'd1', time: 1486958400000, fields: { a: 1, b: 'x' } },
      { measurement: 'device_data', deviceId: 'd1', time: 1486958402500, fields: { c: false } },
    ]);
  });

  test('datapoints named like Object.prototype members become fields with their values', () => {
    // as JSON.parse (and so BullMQ) gives a pushed row: "__proto__" is an own property
    const row = JSON.parse(
      '{"timestamp":"2017-02-13T12-00-00-000","__proto__":1,"constructor":"c","prototype":true,"toString":4,"hasOwnProperty":5}',
    );
    const [point] = dataPoints({ device_id: 'd1', data: [row] }, parseTime);
    expect(Object.entries(point.fields)).toEqual([
      ['__proto__', 1],
      ['constructor', 'c'],
      ['prototype', true],
      ['toString', 4],
      ['hasOwnProperty', 5],
    ]);
  });

  test.each([
    [0, 0, true],
    [1, 0, false],
    [1, 1, true],
    [0, 1, false],
  ])('msg_type 1 raw %i with online code %i -> online %s, raw kept', (raw, onlineCode, online) => {
    expect(pushStatusPoint({ device_id: 'd1', device_status: raw }, 1234, onlineCode)).toEqual({
      measurement: 'device_status',
      deviceId: 'd1',
      time: 1234,
      fields: { online, raw_status: raw, source: 'push' },
    });
  });

  test('backoff grows from about a second and is capped at about a minute', () => {
    for (let i = 0; i < 20; i++) {
      expect(ingestBackoff(1)).toBeGreaterThanOrEqual(800);
      expect(ingestBackoff(1)).toBeLessThanOrEqual(1200);
      expect(ingestBackoff(40)).toBeLessThanOrEqual(72_000);
      expect(ingestBackoff(40)).toBeGreaterThanOrEqual(48_000);
    }
  });
});

/** Records writes; `fail` makes the next write reject. */
class RecordingWriter {
  calls: Array<{ points: SinkPoint[]; source: string }> = [];
  fail?: Error;
  async write(points: SinkPoint[], options: WriteOptions): Promise<WriteResult> {
    await new Promise((r) => setImmediate(r));
    this.calls.push({ points, source: options.source });
    if (this.fail) throw this.fail;
    return { written: points.length, merged: 0, deadLettered: 0 };
  }
}

const point = (i: number): SinkPoint => ({ measurement: 'device_data', deviceId: 'd', time: i, fields: { v: i } });

describe('PointBatcher', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  test('many small writes become one, and each caller resolves after it', async () => {
    const w = new RecordingWriter();
    const b = new PointBatcher(w, { maxPoints: 1000 });
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => b.write([point(2 * i), point(2 * i + 1)], { source: 'push' })),
    );
    expect(w.calls).toHaveLength(1);
    expect(w.calls[0].points.map((p) => p.time)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(results.every((r) => r.written === 100)).toBe(true);
    await b.close();
  });

  test('a full batch is written at once; sources are kept apart', async () => {
    const w = new RecordingWriter();
    const b = new PointBatcher(w, { maxPoints: 10 });
    const full = b.write(
      Array.from({ length: 10 }, (_, i) => point(i)),
      { source: 'push' },
    );
    await full;
    expect(w.calls).toEqual([{ points: Array.from({ length: 10 }, (_, i) => point(i)), source: 'push' }]);
    const other = b.write([point(99)], { source: 'setting' });
    await b.close();
    await other;
    expect(w.calls[1]).toEqual({ points: [point(99)], source: 'setting' });
  });

  test('points arriving while a write runs gather and go out together when it finishes', async () => {
    const w = new RecordingWriter();
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    let started!: () => void;
    const firstRunning = new Promise<void>((r) => (started = r));
    const slow = {
      write: async (points: SinkPoint[], options: WriteOptions) => {
        if (w.calls.length > 0) return w.write(points, options);
        started();
        await gate;
        return w.write(points, options);
      },
    };
    const b = new PointBatcher(slow, { maxPoints: 1000, maxInFlight: 1, lingerMs: 0 });
    const first = b.write([point(0)], { source: 'push' });
    await firstRunning;
    const later: Array<Promise<WriteResult>> = [];
    for (let i = 1; i <= 30; i++) {
      later.push(b.write([point(i)], { source: 'push' }));
      await new Promise((r) => setImmediate(r)); // one caller per event-loop turn: each would be a write of its own
    }
    open();
    await Promise.all([first, ...later]);
    expect(w.calls.map((c) => c.points.length)).toEqual([1, 30]);
    expect(w.calls[1].points.map((p) => p.time)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    await b.close();
  });

  test('points that arrive within the linger time go out as one write, the next ones as another', async () => {
    // the batcher's clock and timers are the test's: under load, real 2 ms waits can add up past the linger
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    const w = new RecordingWriter();
    const b = new PointBatcher(w, { maxPoints: 1000, lingerMs: 40 });
    const first: Array<Promise<WriteResult>> = [];
    for (let i = 0; i < 5; i++) {
      first.push(b.write([point(i)], { source: 'push' }));
      await vi.advanceTimersByTimeAsync(i < 4 ? 9 : 3); // callers at 0, 9, 18, 27, 36 ms; now 39 ms
    }
    expect(w.calls).toHaveLength(0); // nothing written before the first point lingered 40 ms
    await vi.advanceTimersByTimeAsync(1);
    await Promise.all(first);
    expect(w.calls.map((c) => c.points.map((p) => p.time))).toEqual([[0, 1, 2, 3, 4]]);
    const next = b.write([point(5)], { source: 'push' });
    await vi.advanceTimersByTimeAsync(39);
    expect(w.calls).toHaveLength(1); // the next point lingers its own 40 ms
    await vi.advanceTimersByTimeAsync(1);
    await next;
    expect(w.calls.map((c) => c.points.map((p) => p.time))).toEqual([[0, 1, 2, 3, 4], [5]]);
    await b.close();
  });

  test('a failed write rejects every caller of that batch', async () => {
    const w = new RecordingWriter();
    w.fail = Object.assign(new Error('influx down'), { retryable: true });
    const b = new PointBatcher(w, { maxPoints: 100 });
    const outcomes = await Promise.allSettled([
      b.write([point(1)], { source: 'push' }),
      b.write([point(2)], { source: 'push' }),
    ]);
    expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'rejected']);
    expect((outcomes[0] as PromiseRejectedResult).reason.message).toBe('influx down');
    await b.close();
    await expect(b.write([point(3)], { source: 'push' })).rejects.toThrow('closed');
  });
});
