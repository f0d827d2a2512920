import { describe, expect, test } from 'vitest';
import type { PointWriter, SinkPoint, WriteOptions, WriteResult } from '../../src/influx/api.js';
import { createMetrics } from '../../src/ops/metrics.js';
import { meterWriter } from '../../src/ops/meter-writer.js';
import { mergeDuplicates } from '../../src/influx/merge-duplicates.js';

/** The inner writer: takes every point (the decorator's bookkeeping is what is tested here). */
class TakingWriter implements PointWriter {
  async write(points: SinkPoint[], _options: WriteOptions): Promise<WriteResult> {
    return { written: points.length, merged: 0, deadLettered: 0 };
  }
  async close(): Promise<void> {}
}

const data = (deviceId: string, time: number): SinkPoint => ({
  measurement: 'device_data',
  deviceId,
  time,
  fields: { v: 1 },
});

async function gauge(metrics: ReturnType<typeof createMetrics>, deviceId: string): Promise<number | undefined> {
  const m = await metrics.registry.getSingleMetric('expeed_last_data_timestamp_seconds')!.get();
  return m.values.find((v) => v.labels.device_id === deviceId)?.value;
}

describe('meterWriter', () => {
  test('last data time per device: the newest point of each write, never moving back; other measurements ignored', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const w = meterWriter(new TakingWriter(), metrics);
    // a page out of order, two devices, and a status point newer than all of them
    await w.write(
      [
        data('a', 5000),
        data('b', 2000),
        data('a', 9000),
        data('a', 7000),
        { measurement: 'device_status', deviceId: 'a', time: 99_000, fields: { online: true } },
      ],
      { source: 'pull' },
    );
    expect(await gauge(metrics, 'a')).toBe(9);
    expect(await gauge(metrics, 'b')).toBe(2);
    // an older write (a backfill of the past) does not move the gauge back
    await w.write([data('a', 1000), data('b', 3000)], { source: 'pull' });
    expect(await gauge(metrics, 'a')).toBe(9);
    expect(await gauge(metrics, 'b')).toBe(3);
    const written = await metrics.registry.getSingleMetric('expeed_points_written_total')!.get();
    expect(written.values.find((v) => v.labels.source === 'pull')?.value).toBe(7);
  });

  test('expeed_same_time_conflicts_total counts fields that rows of one device and millisecond disagree on', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    // merges as the InfluxDB writer does before it writes
    const merging: PointWriter = {
      async write(points) {
        const { points: unique, merged, conflicts } = mergeDuplicates(points);
        return { written: unique.length, merged, conflicts, deadLettered: 0 };
      },
      async close() {},
    };
    const w = meterWriter(merging, metrics);
    const at = (fields: Record<string, unknown>): SinkPoint => ({
      measurement: 'device_data',
      deviceId: 'a',
      time: 1000,
      fields,
    });
    await w.write([at({ t: 1, h: 5 }), at({ t: 2, m: 'x' }), at({ t: 2, h: 6 })], { source: 'pull' });
    const m = await metrics.registry.getSingleMetric('expeed_same_time_conflicts_total')!.get();
    // t: 1 -> 2 (one), t: 2 -> 2 (a repeat, none), h: 5 -> 6 (one)
    expect(m.values.find((v) => v.labels.source === 'pull')?.value).toBe(2);
  });

  test('points InfluxDB refused do not move the gauge; a point with some values written does', async () => {
    /** refuses every point later than year 3000, as InfluxDB refuses times it cannot store */
    class RefusingWriter implements PointWriter {
      async write(points: SinkPoint[], _options: WriteOptions): Promise<WriteResult> {
        const refused = points.filter((p) => p.time > Date.UTC(3000, 0, 1));
        return {
          written: points.length - refused.length,
          merged: 0,
          deadLettered: refused.length,
          ...(refused.length ? { refused } : {}),
        };
      }
      async close(): Promise<void> {}
    }
    const metrics = createMetrics({ defaultMetrics: false });
    const w = meterWriter(new RefusingWriter(), metrics);
    const y9999 = Date.UTC(9999, 0, 1);
    await w.write([data('a', 5000), data('a', y9999), data('b', y9999)], { source: 'push' });
    expect(await gauge(metrics, 'a')).toBe(5);
    expect(await gauge(metrics, 'b')).toBeUndefined();
    await w.write([data('a', 8000)], { source: 'push' });
    expect(await gauge(metrics, 'a')).toBe(8);
  });
});
