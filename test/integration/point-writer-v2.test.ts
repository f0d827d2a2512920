/**
 * The 2.x+ write path against a real server that speaks `/api/v2/write`: VictoriaMetrics stores
 * each numeric (and boolean, as 1/0) field as a series `<measurement>_<field>` labelled with the
 * tags, which we read back through its export API.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { InfluxDB, type Transport } from '@influxdata/influxdb-client';
import { Redis } from 'ioredis';
import { MEASUREMENT, type SinkPoint } from '../../src/influx/api.js';
import { InfluxPointWriter } from '../../src/influx/point-writer.js';
import { InfluxRejectedError, InfluxUnavailableError } from '../../src/influx/errors.js';
import { RedisDeadLetterStore } from '../../src/dead-letters/store.js';
import {
  deleteRedisPrefix,
  REDIS_URL,
  startVictoriaMetrics,
  testPrefix,
  type ChildServer,
} from '../helpers/services.js';

const T0 = Date.UTC(2023, 5, 1);
const data = (deviceId: string, time: number, fields: Record<string, unknown>): SinkPoint => ({
  measurement: MEASUREMENT.data,
  deviceId,
  time,
  fields,
});

let vm: ChildServer;
let redis: Redis;
let prefix: string;
let store: RedisDeadLetterStore;
const writers: InfluxPointWriter[] = [];

function writer(options: Partial<ConstructorParameters<typeof InfluxPointWriter>[0]> = {}): InfluxPointWriter {
  const w = new InfluxPointWriter({
    url: vm.url,
    api: 'v2',
    bucket: 'expeed',
    org: 'acme',
    token: 'v2-secret-token',
    deadLetters: store,
    ...options,
  });
  writers.push(w);
  return w;
}

interface Exported {
  metric: Record<string, string>;
  values: number[];
  timestamps: number[];
}

async function exported(match: string): Promise<Exported[]> {
  await fetch(`${vm.url}/internal/force_flush`);
  const res = await fetch(`${vm.url}/api/v1/export?${new URLSearchParams({ 'match[]': match, start: '0' })}`);
  const text = await res.text();
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Exported)
    .sort((a, b) => JSON.stringify(a.metric).localeCompare(JSON.stringify(b.metric)));
}

beforeAll(async () => {
  vm = await startVictoriaMetrics();
  redis = new Redis(REDIS_URL);
  prefix = testPrefix('writer-v2');
  store = new RedisDeadLetterStore(redis, prefix);
});

afterAll(async () => {
  for (const w of writers) await w.close();
  await vm?.close();
  await deleteRedisPrefix(prefix);
  redis?.disconnect();
});

describe('InfluxDB 2.x API writer (VictoriaMetrics /api/v2/write)', () => {
  test('writes exact values to /api/v2/write with the token, escaped tags and merged duplicates', async () => {
    const real = new InfluxDB({ url: vm.url }).transport;
    const seen: Array<{ path: string; auth?: string }> = [];
    const transport: Pick<Transport, 'request'> = {
      request: (path, body, options) => {
        seen.push({ path, auth: options.headers?.authorization });
        return real.request(path, body, options);
      },
    };
    const odd = 'hall 2, east=1';
    const result = await writer({ transport }).write(
      [
        data('v2-a', T0, { temp: 21, hum: 40.125 }),
        data(odd, T0 + 1000, { temp: -3.5, on: true }),
        data('v2-a', T0, { hum: 41.5, extra: null }),
        data('v2-a', T0 + 2000, { temp: 1e-7, bad: Number.NaN }),
      ],
      { source: 'push' },
    );
    expect(result).toEqual({ written: 3, merged: 1, conflicts: 1, deadLettered: 1, absent: 1 }); // hum: 40.125 then 41.5
    expect(seen).toEqual([
      { path: '/api/v2/write?bucket=expeed&precision=ms&org=acme', auth: 'Token v2-secret-token' },
    ]);

    const series = await exported('{__name__=~"device_data_(temp|hum|on)"}');
    expect(series.map((s) => [s.metric, s.values, s.timestamps])).toEqual(
      [
        [{ __name__: 'device_data_hum', device_id: 'v2-a' }, [41.5], [T0]],
        [{ __name__: 'device_data_on', device_id: odd }, [1], [T0 + 1000]],
        [{ __name__: 'device_data_temp', device_id: odd }, [-3.5], [T0 + 1000]],
        [{ __name__: 'device_data_temp', device_id: 'v2-a' }, [21, 1e-7], [T0, T0 + 2000]],
      ].sort((a, b) => JSON.stringify(a[0]).localeCompare(JSON.stringify(b[0]))),
    );
    const [letter] = await store.list();
    expect(letter).toMatchObject({
      kind: 'point',
      source: 'push',
      deviceId: 'v2-a',
      reason: 'field "bad": value NaN is not a finite number',
    });
    expect(letter.raw).toEqual(data('v2-a', T0 + 2000, { temp: 1e-7, bad: Number.NaN }));
  });

  test('ids with quotes, non-ASCII, spaces, commas and = and such field names reach the 2.x API exactly', async () => {
    const ids = ['温度计 一号', 'q"uote,x=1', "it's = 2"];
    const result = await writer().write(
      ids.map((id, i) => data(id, T0 + 5000 + i, { 'a b,c="d"': i + 1 })),
      { source: 'pull' },
    );
    expect(result).toMatchObject({ written: 3, deadLettered: 0 });
    const series = await exported('{__name__=~"device_data_a.*"}');
    expect(series.map((s) => [s.metric.__name__, s.metric.device_id, s.values])).toEqual(
      ids
        .map((id, i) => ['device_data_a b,c="d"', id, [i + 1]])
        .sort((a, b) =>
          JSON.stringify({ __name__: a[0], device_id: a[1] }).localeCompare(
            JSON.stringify({ __name__: b[0], device_id: b[1] }),
          ),
        ),
    );
  });

  test('12,000 points go as 5000-line batches and every value lands', async () => {
    const real = new InfluxDB({ url: vm.url }).transport;
    let requests = 0;
    const transport: Pick<Transport, 'request'> = {
      request: (path, body: string, options) => {
        requests++;
        expect(body.split('\n').length).toBeLessThanOrEqual(5000);
        return real.request(path, body, options);
      },
    };
    const points = Array.from({ length: 12_000 }, (_, i) =>
      data(`bulk-${i % 4}`, T0 + Math.floor(i / 4) * 1000, { seq: i }),
    );
    expect(await writer({ transport }).write(points, { source: 'pull' })).toEqual({
      written: 12_000,
      merged: 0,
      deadLettered: 0,
      absent: 0,
    });
    expect(requests).toBe(3);
    const series = await exported('{__name__="device_data_seq"}');
    expect(series.map((s) => s.metric.device_id)).toEqual(['bulk-0', 'bulk-1', 'bulk-2', 'bulk-3']);
    for (const [d, s] of series.entries()) {
      expect(s.values).toEqual(Array.from({ length: 3000 }, (_, k) => k * 4 + d));
      expect(s.timestamps).toEqual(Array.from({ length: 3000 }, (_, k) => T0 + k * 1000));
    }
  });

  test('auto cannot tell what VictoriaMetrics is and says so', async () => {
    const err = await writer({ api: 'auto' })
      .write([data('x', T0, { v: 1 })], { source: 'pull' })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InfluxRejectedError);
    expect((err as Error).message).toBe(
      `cannot tell which write API the server at ${vm.url} speaks (no InfluxDB version on /ping or /health); set INFLUX_API=v1 or INFLUX_API=v2`,
    );
  });

  test('server down: retryable error without the token in it; after restart the write lands', async () => {
    const w = writer({ retry: { maxAttempts: 3, maxElapsedMs: 5_000, baseDelayMs: 50, maxDelayMs: 100 } });
    // a first write opens the connection; VictoriaMetrics itself may lose its last second of data
    // on SIGKILL (it acknowledges before it persists), so only what is written after restart is checked
    await w.write([data('before-kill', T0, { v: 0 })], { source: 'pull' });
    await vm.kill();
    const points = Array.from({ length: 10 }, (_, i) => data('down', T0 + (i + 1) * 1000, { v: i + 1 }));
    const err = await w.write(points, { source: 'pull' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InfluxUnavailableError);
    expect((err as Error).message).not.toContain('v2-secret-token');
    await vm.start();
    expect(await w.write(points, { source: 'pull' })).toMatchObject({ written: 10 });
    const [s] = await exported('{__name__="device_data_v", device_id="down"}');
    expect(s.values).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(s.timestamps).toEqual(points.map((p) => p.time));
  });
});
