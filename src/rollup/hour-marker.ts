/**
 * A writer decorator that marks the hours a write touched as dirty, after InfluxDB acknowledged
 * the points. Both ways data arrives (pull and push) write through it. If marking fails the write
 * fails too, and its caller retries it: a checkpoint never moves, and a push job never completes,
 * past rows whose hour was not marked.
 */
import { MEASUREMENT, type PointWriter, type SinkPoint } from '../influx/api.js';
import { hourOf, type DirtyHours } from './dirty-hours.js';

/** The hour starts of `device_data` points, per device. */
export function touchedHours(points: readonly SinkPoint[]): Map<string, Set<number>> {
  const touched = new Map<string, Set<number>>();
  let lastDevice: string | undefined;
  let lastHours: Set<number> | undefined;
  for (const p of points) {
    if (p.measurement !== MEASUREMENT.data || !Number.isFinite(p.time) || typeof p.deviceId !== 'string') continue;
    // a page is thousands of points of one device: skip the map lookup while the device repeats
    if (p.deviceId !== lastDevice) {
      lastDevice = p.deviceId;
      lastHours = touched.get(p.deviceId);
      if (!lastHours) touched.set(p.deviceId, (lastHours = new Set()));
    }
    lastHours!.add(hourOf(p.time));
  }
  return touched;
}

export function markingWriter(writer: PointWriter, dirty: Pick<DirtyHours, 'mark'>): PointWriter {
  return {
    async write(points, options) {
      const result = await writer.write(points, options);
      const touched = touchedHours(points);
      if (touched.size) await dirty.mark(touched);
      return result;
    },
    close: () => writer.close(),
  };
}
