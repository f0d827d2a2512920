/**
 * Dead-letter retry of kind 'row' (a history row the platform sent that could not be read, e.g.
 * an unparseable timestamp): the row is read again — with the configuration as it is now, say a
 * corrected EXPEED_TIMEZONE — and written as a `device_data` point through the writer it is
 * given (the app's one write path: its hour's rollup is recomputed like after any other write). A
 * row that is still unreadable throws, so the letter stays with its attempt counted.
 */
import type { RetryHandler } from '../dead-letters/store.js';
import { MEASUREMENT, type PointWriter } from '../influx/api.js';
import { readRow } from '../platform/answers.js';
import type { DataRow, UnreadableRow } from '../platform/api.js';

export function retryRow(options: { writer: Pick<PointWriter, 'write'>; timezone: string }): RetryHandler {
  return async (letter) => {
    const raw = letter.raw;
    if (!letter.deviceId) throw new Error('the letter names no device: the row cannot be attributed');
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new Error('the kept row is not an object');
    // read by the same rules as a history page's rows (time, well-formed text, prototype names)
    const rows: DataRow[] = [];
    const unreadable: UnreadableRow[] = [];
    readRow(raw, options.timezone, rows, unreadable);
    if (unreadable.length > 0) throw new Error(unreadable[0].reason);
    const { time, values } = rows[0];
    const result = await options.writer.write(
      [{ measurement: MEASUREMENT.data, deviceId: letter.deviceId, time, fields: values }],
      { source: 'pull' },
    );
    if (result.written === 0) throw new Error("InfluxDB took none of the row's values (see the new dead letters)");
  };
}
