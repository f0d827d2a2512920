// One write path: what the composition root hands out writes raw rows only through the writer that
// marks their rollup hours. No member of the app (nor of its parts) is the unmarked InfluxDB writer,
// and a write through `app.writer`, even one asked not to set refusals aside, marks what it touched.
import { afterAll, beforeAll, expect, test } from 'vitest';
import { MEASUREMENT, type SinkPoint } from '../../src/influx/api.js';
import { InfluxPointWriter } from '../../src/influx/point-writer.js';
import { influxRows } from '../helpers/services.js';
import { startPullEnv, type PullEnv } from '../fixtures/pull-env.js';

const HOUR = 3_600_000;
const T0 = Date.UTC(2025, 5, 1, 10);
let env: PullEnv;

beforeAll(async () => {
  env = await startPullEnv({
    name: 'write-path',
    sim: { devices: [{ id: 'wp', key: 'k-wp', cadenceSec: 600 }], from: T0, to: T0 + HOUR },
    register: false,
  });
});
afterAll(async () => env?.close());

/** Paths under the app (two levels: its members and their members) holding an unmarked writer. */
function unmarkedWriters(root: object): string[] {
  const found: string[] = [];
  for (const [name, value] of Object.entries(root)) {
    if (value instanceof InfluxPointWriter) found.push(name);
    else if (value && typeof value === 'object') {
      for (const [inner, v] of Object.entries(value))
        if (v instanceof InfluxPointWriter) found.push(`${name}.${inner}`);
    }
  }
  return found;
}

test('the app hands out no writer that skips the rollup marking', () => {
  // the check can see one: an object holding the raw writer is reported
  const raw = new InfluxPointWriter({
    url: 'http://127.0.0.1:1',
    api: 'v1',
    bucket: 'x',
    deadLetters: { add: async () => 'x' },
  });
  expect(unmarkedWriters({ a: raw, b: { c: raw } })).toEqual(['a', 'b.c']);
  expect(unmarkedWriters(env.app)).toEqual([]);
});

test('a write through app.writer marks the hours it touched, set aside or not', async () => {
  const point = (time: number, v: number): SinkPoint => ({
    measurement: MEASUREMENT.data,
    deviceId: 'wp',
    time,
    fields: { v },
  });
  await env.app.writer.write([point(T0 + 60_000, 1)], { source: 'pull' });
  const result = await env.app.writer.write([point(T0 + 2 * HOUR + 1, 2)], { source: 'pull', setAside: false });
  expect(result).toMatchObject({ written: 1, deadLettered: 0, rejected: [] });
  expect(await env.app.rollup.dirty.count('wp', [T0, T0 + 2 * HOUR])).toBe(2);
  expect(await env.app.rollup.dirty.count('wp', [T0 + HOUR])).toBe(0);
  expect(await influxRows(env.db.name, `SELECT v FROM device_data WHERE device_id = 'wp'`)).toEqual([
    { time: T0 + 60_000, v: 1 },
    { time: T0 + 2 * HOUR + 1, v: 2 },
  ]);
});
