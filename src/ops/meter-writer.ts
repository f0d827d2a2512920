/** A writer that counts what it wrote, refused and set aside, by source, for /metrics. */
import type { PointWriter, SinkPoint, WriteOptions } from '../influx/api.js';
import type { Metrics } from './metrics.js';

/** `time \n device` of the refused data points, or undefined when there are none (the common case). */
function refusedKeys(refused: SinkPoint[] | undefined): Set<string> | undefined {
  if (!refused?.length) return undefined;
  const keys = new Set<string>();
  for (const p of refused) if (p.measurement === 'device_data') keys.add(`${p.time}\n${p.deviceId}`);
  return keys;
}

/** Wraps a writer so that points written, write errors and dead letters are counted by source. */
export function meterWriter(
  writer: PointWriter,
  metrics: Metrics,
  options: { deviceLabel?: (deviceId: string) => string } = {},
): PointWriter {
  const deviceLabel = options.deviceLabel ?? ((id: string) => id);
  const newestSeen = new Map<string, number>();
  return {
    async write(points: SinkPoint[], options: WriteOptions) {
      try {
        const result = await writer.write(points, options);
        metrics.pointsWritten.inc({ source: options.source }, result.written);
        if (result.deadLettered) metrics.deadLettered.inc({ source: options.source }, result.deadLettered);
        if (result.conflicts) metrics.sameTimeConflicts.inc({ source: options.source }, result.conflicts);
        // newest time per device in this write first, then one gauge update per device: a history
        // page is 6000 points of one device, and a labelled gauge update costs far more than a compare.
        // Only acknowledged points count: one InfluxDB refused (say, in year 9999) must not move it.
        const refused = refusedKeys(result.refused);
        const newest = new Map<string, number>();
        for (const p of points) {
          if (p.measurement !== 'device_data') continue;
          if (refused?.has(`${p.time}\n${p.deviceId}`)) continue;
          const id = deviceLabel(p.deviceId);
          const t = newest.get(id);
          if (t === undefined || p.time > t) newest.set(id, p.time);
        }
        for (const [deviceId, time] of newest) {
          if (time <= (newestSeen.get(deviceId) ?? 0)) continue;
          newestSeen.set(deviceId, time);
          metrics.lastDataTime.set({ device_id: deviceId }, time / 1000);
        }
        return result;
      } catch (err) {
        metrics.writeErrors.inc({ source: options.source });
        throw err;
      }
    },
    close: () => writer.close(),
  };
}
