import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { HttpError, InfluxDB, type Transport } from '@influxdata/influxdb-client';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { Writable } from 'node:stream';
import { MEASUREMENT, type SinkPoint } from '../../src/influx/api.js';
import { InfluxPointWriter } from '../../src/influx/point-writer.js';
import { InfluxUnavailableError } from '../../src/influx/errors.js';
import { RedisDeadLetterStore } from '../../src/dead-letters/store.js';
import {
  createTestDatabase,
  deleteRedisPrefix,
  influxQuery,
  influxRows,
  INFLUX_URL,
  randomName,
  REDIS_URL,
  startInfluxd,
  testPrefix,
} from '../helpers/services.js';

const T0 = Date.UTC(2024, 0, 1);
const data = (deviceId: string, time: number, fields: Record<string, unknown>): SinkPoint => ({
  measurement: MEASUREMENT.data,
  deviceId,
  time,
  fields,
});

let redis: Redis;
let prefix: string;
let store: RedisDeadLetterStore;
let db: Awaited<ReturnType<typeof createTestDatabase>>;
const writers: InfluxPointWriter[] = [];

function writer(options: Partial<ConstructorParameters<typeof InfluxPointWriter>[0]> = {}): InfluxPointWriter {
  const w = new InfluxPointWriter({ url: INFLUX_URL, api: 'v1', bucket: db.name, deadLetters: store, ...options });
  writers.push(w);
  return w;
}

beforeAll(async () => {
  redis = new Redis(REDIS_URL);
  prefix = testPrefix('writer-v1');
  store = new RedisDeadLetterStore(redis, prefix);
  db = await createTestDatabase('writer_v1');
});

afterAll(async () => {
  for (const w of writers) await w.close();
  await db.drop();
  await deleteRedisPrefix(prefix);
  redis.disconnect();
});

describe('InfluxDB 1.x writer', () => {
  test('exact values round trip through InfluxQL, with escaping and float typing', async () => {
    const odd = 'room 1, "north"=a\\b\ttab';
    const points = [
      data('dev-a', T0, {
        temp: 21,
        hum: 45.25,
        on: true,
        mode: 'eco "x" \\ y\nz',
        code: '007',
        gps: { lat: 31.2, lng: [1, 2] },
      }),
      data(odd, T0 + 1000, { [odd]: -0.5, big: 1e21, tiny: 1e-7, empty: '' }),
      data('dev-a', T0 + 2000, { temp: 22.5, hum: null }),
      {
        measurement: MEASUREMENT.status,
        deviceId: 'dev-a',
        time: T0,
        fields: { online: true, raw_status: 1, source: 'poll' },
      },
      {
        measurement: MEASUREMENT.setting,
        deviceId: 'dev-a',
        time: T0,
        fields: { message_id: 'm-1', state: 'sent', settings: { temp: 25 } },
      },
    ];
    const result = await writer().write(points, { source: 'pull' });
    expect(result).toEqual({ written: 5, merged: 0, deadLettered: 0, absent: 1 });
    expect(await influxRows(db.name, 'SELECT * FROM device_status')).toEqual([
      { time: T0, device_id: 'dev-a', online: true, raw_status: 1, source: 'poll' },
    ]);
    expect(await influxRows(db.name, 'SELECT * FROM device_setting')).toEqual([
      { time: T0, device_id: 'dev-a', message_id: 'm-1', state: 'sent', settings: '{"temp":25}' },
    ]);
    const statusTypes = await influxRows(db.name, 'SHOW FIELD KEYS FROM device_status');
    expect(Object.fromEntries(statusTypes.map((t) => [t.fieldKey, t.fieldType]))).toEqual({
      online: 'boolean',
      raw_status: 'integer',
      source: 'string',
    });

    const a = await influxRows(
      db.name,
      `SELECT temp, hum, "on", mode, code, gps FROM device_data WHERE device_id = 'dev-a'`,
    );
    expect(a).toEqual([
      // a plain decimal string is a float (EXPEED_NUMERIC_STRINGS=number), leading zeros read as decimal
      { time: T0, temp: 21, hum: 45.25, on: true, mode: 'eco "x" \\ y\nz', code: 7, gps: '{"lat":31.2,"lng":[1,2]}' },
      { time: T0 + 2000, temp: 22.5, hum: null, on: null, mode: null, code: null, gps: null },
    ]);
    const series = await influxQuery(db.name, `SELECT * FROM device_data WHERE time = ${T0 + 1000}ms`);
    const row = Object.fromEntries(series[0].columns.map((c, i) => [c, series[0].values[0][i]]));
    expect(row).toMatchObject({ device_id: odd, [odd]: -0.5, big: 1e21, tiny: 1e-7, empty: '' });

    const types = await influxRows(db.name, 'SHOW FIELD KEYS FROM device_data');
    expect(Object.fromEntries(types.map((t) => [t.fieldKey, t.fieldType]))).toEqual({
      temp: 'float',
      hum: 'float',
      on: 'boolean',
      mode: 'string',
      code: 'float',
      gps: 'string',
      [odd]: 'float',
      big: 'float',
      tiny: 'float',
      empty: 'string',
    });
  });

  test('duplicates in a batch become one point; NaN and bad names become dead letters, the rest lands', async () => {
    const before = await store.count();
    const result = await writer().write(
      [
        data('dup', T0, { a: 1, b: 2 }),
        data('dup', T0, { b: 3, c: Number.NaN }),
        data('dup', T0 + 1, { x: Number.POSITIVE_INFINITY }),
        data('', T0, { a: 1 }),
        data('dup', T0 + 2, { 'bad\nname': 1, ok: 'yes' }),
      ],
      { source: 'push' },
    );
    expect(result).toEqual({
      written: 2,
      merged: 1,
      conflicts: 1,
      deadLettered: 4,
      absent: 0,
      refused: [data('dup', T0 + 1, { x: Number.POSITIVE_INFINITY }), data('', T0, { a: 1 })],
    }); // b: 2 then 3
    expect(await influxRows(db.name, `SELECT a, b, c, ok FROM device_data WHERE device_id = 'dup'`)).toEqual([
      { time: T0, a: 1, b: 3, c: null, ok: null },
      { time: T0 + 2, a: null, b: null, c: null, ok: 'yes' },
    ]);
    // letters of one write share a timestamp: their order among themselves is not defined
    const letters = (await store.list()).slice(before).sort((a, b) => a.reason.localeCompare(b.reason));
    expect(letters.map((l) => [l.kind, l.source, l.deviceId, l.reason])).toEqual([
      ['point', 'push', '', 'device id is empty'],
      ['point', 'push', 'dup', 'field "c": value NaN is not a finite number'],
      ['point', 'push', 'dup', 'field name "bad\\nname" contains a line break, which line protocol cannot carry'],
      ['point', 'push', 'dup', 'no storable field: field "x": value Infinity is not a finite number'],
    ]);
    expect(letters[1].raw).toEqual(data('dup', T0, { a: 1, b: 3, c: Number.NaN }));
    expect(letters[3].raw).toEqual(data('dup', T0 + 1, { x: Number.POSITIVE_INFINITY }));
    expect(letters[0].raw).toEqual(data('', T0, { a: 1 }));
  });

  test('names with spaces, commas, =, quotes, backslashes, non-ASCII and prototype names come back exactly; values too', async () => {
    const ids = [
      'a\\b',
      'a\\\\b',
      'a\\ b',
      'a\\,b',
      'a\\=b',
      'a\\"b',
      '"quoted"',
      'x"',
      'x\\\\\\ y',
      '\\lead',
      '温度计 一号',
      'a b,c=d',
      'tab\there',
      'emoji 😀',
      '= ,',
    ];
    // a field name may not have an odd run of backslashes before a separator (see nameProblem)
    const names = [
      'a\\b',
      'a\\\\b',
      'a\\\\ b',
      'a\\\\,b',
      'a\\"b',
      '"quoted"',
      'x"',
      '\\lead',
      '温度计 一号',
      'a b,c=d',
      'tab\there',
      'emoji 😀',
      '= ,',
      'x\\\\=y',
    ];
    const protoNames = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf'];
    const all = [...names, ...protoNames];
    const values = ['ends with \\', '\\"', '\\\\', '"', 'line\nbreak', '温度 😀', '\\', 'a\\nb'];
    const expected = (i: number, k: number) => (k % 3 === 0 ? values[(i + k) % values.length] : i * 100 + k);
    const points: SinkPoint[] = ids.map((id, i) => {
      const fields: Record<string, unknown> = Object.create(null);
      for (const [k, name] of all.entries()) fields[name] = expected(i, k);
      return data(id, T0 + 10_000 + i, fields);
    });
    const result = await writer().write(points, { source: 'pull' });
    expect(result).toMatchObject({ written: ids.length, deadLettered: 0 });
    const series = await influxQuery(
      db.name,
      `SELECT * FROM device_data WHERE time >= ${T0 + 10_000}ms AND time < ${T0 + 11_000}ms`,
    );
    const rows = series[0].values.map((v) => Object.fromEntries(series[0].columns.map((c, i) => [c, v[i]])));
    expect(rows.map((r) => r.device_id)).toEqual(ids);
    for (const [i, row] of rows.entries()) {
      for (const [k, name] of all.entries())
        expect(row[name], `${JSON.stringify(ids[i])} ${JSON.stringify(name)}`).toBe(expected(i, k));
    }
    const keys = await influxRows(db.name, 'SHOW FIELD KEYS FROM device_data');
    for (const name of all) expect(keys.map((k) => k.fieldKey)).toContain(name);
  });

  test('names line protocol cannot carry are dead letters; the rest of the row lands', async () => {
    const before = await store.count();
    const result = await writer().write(
      [data('ends\\', T0 + 20_000, { v: 1 }), data('tail-ok', T0 + 20_000, { 'x\\': 1, 'a\\ b': 3, fine: 2 })],
      { source: 'pull' },
    );
    expect(result).toMatchObject({ written: 1, deadLettered: 3 });
    expect(await influxRows(db.name, `SELECT fine FROM device_data WHERE device_id = 'tail-ok'`)).toEqual([
      { time: T0 + 20_000, fine: 2 },
    ]);
    const reasons = (await store.list())
      .slice(before)
      .map((l) => l.reason)
      .sort();
    expect(reasons).toEqual([
      "device id ends with a backslash, which InfluxDB's line protocol cannot carry",
      'field name "a\\\\ b" has an odd number of backslashes before a space, comma or "=", which InfluxDB\'s line protocol cannot carry',
      'field name "x\\\\" ends with a backslash, which InfluxDB\'s line protocol cannot carry',
    ]);
  });

  test('the result names the points of which nothing landed (year 9999: outside what InfluxDB can store)', async () => {
    const y9999 = Date.UTC(9999, 0, 1);
    const far = data('refused', y9999, { v: 1, w: 2 });
    const result = await writer().write(
      [data('refused', T0 + 30_000, { v: 1 }), far, data('refused', T0 + 30_001, { v: Number.NaN, w: 3 })],
      { source: 'pull' },
    );
    expect(result).toMatchObject({ written: 2, refused: [far] });
    expect(
      (await influxRows(db.name, `SELECT v, w FROM device_data WHERE device_id = 'refused'`)).map((r) => r.time),
    ).toEqual([T0 + 30_000, T0 + 30_001]);
    const clean = await writer().write([data('refused', T0 + 30_002, { v: 1 })], { source: 'pull' });
    expect(clean).not.toHaveProperty('refused');
  });

  test('field type conflicts: only the conflicting values are set aside, everything else lands', async () => {
    const w = writer();
    await w.write([data('c1', T0, { level: 1, state: 'idle' })], { source: 'pull' });
    const before = await store.count();
    const batch: SinkPoint[] = [];
    for (let i = 1; i <= 200; i++) {
      // every 50th row sends `level` as a string (a type conflict); `state` as a number in row 120
      const fields: Record<string, unknown> = { level: i % 50 === 0 ? `L${i}` : i, other: i * 2 };
      if (i === 120) fields.state = 5;
      batch.push(data('c1', T0 + i * 1000, fields));
    }
    const result = await w.write(batch, { source: 'pull' });
    expect(result).toEqual({ written: 200, merged: 0, deadLettered: 5, absent: 0 });

    const rows = await influxRows(
      db.name,
      `SELECT level, other, state FROM device_data WHERE device_id = 'c1' AND time > ${T0}ms`,
    );
    expect(rows).toHaveLength(200);
    for (const [i, r] of rows.entries()) {
      const n = i + 1;
      expect(r).toEqual({ time: T0 + n * 1000, level: n % 50 === 0 ? null : n, other: n * 2, state: null });
    }
    const letters = (await store.list()).slice(before);
    expect(letters).toHaveLength(5);
    const byTime = new Map(letters.map((l) => [(l.raw as SinkPoint).time, l]));
    for (const n of [50, 100, 120, 150, 200]) {
      const letter = byTime.get(T0 + n * 1000)!;
      const field = n === 120 ? 'state' : 'level';
      expect(letter.reason).toContain(`field "${field}" refused by InfluxDB: HTTP 400`);
      expect(letter.reason).toContain('field type conflict');
      expect(letter.raw).toEqual(batch[n - 1]);
    }
  });

  test('a rejection that names no line is isolated by halving, each point counted once', async () => {
    const w0 = writer();
    await w0.write([data('bis', T0, { kind: 1 })], { source: 'pull' });
    const real = new InfluxDB({ url: INFLUX_URL }).transport;
    let calls = 0;
    // like InfluxDB 2.x, answer a refused batch with a message that does not say which line
    const transport: Pick<Transport, 'request'> = {
      request: async (path, body, options) => {
        calls++;
        try {
          return await real.request(path, body, options);
        } catch (err) {
          if (err instanceof HttpError && err.statusCode === 400)
            throw new HttpError(422, 'Unprocessable Entity', '{"message":"failure writing points"}');
          throw err;
        }
      },
    };
    const points = Array.from({ length: 64 }, (_, i) =>
      data('bis', T0 + i + 1, { kind: i === 17 || i === 40 ? 'text' : i, time: undefined, n: i }),
    );
    points.push(data('bis', T0 + 100, { time: 5 }));
    const before = await store.count();
    const result = await writer({ transport }).write(points, { source: 'pull' });
    // the points of "text" kept their other fields: only the "time" point landed nothing
    expect(result).toEqual({ written: 64, merged: 0, deadLettered: 3, absent: 64, refused: [points[64]] });
    expect(calls).toBeGreaterThan(3);
    const rows = await influxRows(
      db.name,
      `SELECT kind, n FROM device_data WHERE device_id = 'bis' AND time > ${T0}ms`,
    );
    expect(rows.map((r) => [r.time, r.kind, r.n])).toEqual(
      points.slice(0, 64).map((p, i) => [p.time, i === 17 || i === 40 ? null : i, i]),
    );
    const letters = (await store.list()).slice(before);
    expect(letters.map((l) => (l.raw as SinkPoint).time).sort()).toEqual([T0 + 18, T0 + 41, T0 + 100]);
    const reasons = letters.sort((a, b) => (a.raw as SinkPoint).time - (b.raw as SinkPoint).time).map((l) => l.reason);
    expect(reasons.slice(0, 2).every((r) => r.includes('HTTP 422: failure writing points'))).toBe(true);
    // a field named "time" is known to be refused: set aside before it is sent
    expect(reasons[2]).toBe('no storable field: field name "time" is reserved in InfluxDB');
  });

  test('auto detects 1.x and creates a missing database', async () => {
    const name = randomName('writer_auto');
    const w = writer({ api: 'auto', bucket: name });
    try {
      expect(await w.write([data('auto', T0, { v: 7 })], { source: 'poll' })).toMatchObject({ written: 1 });
      expect(await w.api()).toBe('v1');
      expect(await influxRows(name, 'SELECT v FROM device_data')).toEqual([{ time: T0, v: 7 }]);
    } finally {
      await influxQuery(name, `DROP DATABASE "${name}"`);
    }
  });

  test('a 503 with Retry-After is retried after at least that long', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'warn' }, new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }));
    const real = new InfluxDB({ url: INFLUX_URL }).transport;
    let calls = 0;
    const transport: Pick<Transport, 'request'> = {
      request: (path, body, options) => {
        calls++;
        if (calls === 1)
          return Promise.reject(
            new HttpError(503, 'Service Unavailable', '{"error":"busy"}', '1', 'application/json', undefined, {
              'retry-after': '1',
            }),
          );
        return real.request(path, body, options);
      },
    };
    const w = writer({ transport, logger });
    expect(await w.write([data('r503', T0, { v: 1 })], { source: 'pull' })).toMatchObject({ written: 1 });
    expect(calls).toBe(2);
    const warning = JSON.parse(lines[0]) as { delayMs: number; error: string; attempt: number };
    expect(warning.attempt).toBe(1);
    expect(warning.delayMs).toBeGreaterThanOrEqual(1000);
    expect(warning.error).toBe('HTTP 503: busy');
    expect(await influxRows(db.name, `SELECT v FROM device_data WHERE device_id = 'r503'`)).toEqual([
      { time: T0, v: 1 },
    ]);
  });
});

describe('InfluxDB 1.x outage', () => {
  test('killed and restarted mid-write: the write waits, then every point is there', async () => {
    const server = await startInfluxd();
    try {
      const real = new InfluxDB({ url: server.url }).transport;
      let calls = 0;
      let restarted: Promise<void> | undefined;
      const transport: Pick<Transport, 'request'> = {
        request: async (path, body, options) => {
          calls++;
          // down at the 4th request; back once the writer was refused twice (its retries met the outage)
          if (calls === 4) await server.kill();
          if (calls === 7) restarted = server.start();
          return real.request(path, body, options);
        },
      };
      const w = writer({
        url: server.url,
        bucket: 'outage',
        transport,
        batchLines: 1000,
        concurrency: 1,
        retry: { maxAttempts: 100, maxElapsedMs: 60_000, baseDelayMs: 100, maxDelayMs: 500 },
      });
      const points: SinkPoint[] = [];
      for (let i = 0; i < 10_000; i++) points.push(data(`d${i % 10}`, T0 + i, { v: i }));
      const result = await w.write(points, { source: 'pull' });
      await restarted;
      expect(result).toEqual({ written: 10_000, merged: 0, deadLettered: 0, absent: 0 });
      expect(calls).toBeGreaterThan(10);
      const [count] = await influxRows('outage', 'SELECT count(v), sum(v) FROM device_data', server.url);
      expect(count).toMatchObject({ count: 10_000, sum: (9_999 * 10_000) / 2 });
    } finally {
      await server.close();
    }
  });

  test('down for good: a retryable error, nothing set aside; after restart the same write lands in full', async () => {
    const server = await startInfluxd();
    try {
      const w = writer({
        url: server.url,
        bucket: 'down',
        retry: { maxAttempts: 3, maxElapsedMs: 5_000, baseDelayMs: 50, maxDelayMs: 100 },
      });
      await w.write([data('down', T0, { v: 0 })], { source: 'pull' });
      await server.kill();
      const before = await store.count();
      const points = Array.from({ length: 50 }, (_, i) => data('down', T0 + i + 1, { v: i + 1 }));
      const err = await w.write(points, { source: 'pull' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InfluxUnavailableError);
      expect((err as InfluxUnavailableError).retryable).toBe(true);
      expect((err as Error).message).toMatch(/unavailable after 3 attempt\(s\)/);
      expect(await store.count()).toBe(before);

      await server.start();
      expect(await w.write(points, { source: 'pull' })).toMatchObject({ written: 50, deadLettered: 0 });
      const [agg] = await influxRows('down', 'SELECT count(v), sum(v) FROM device_data', server.url);
      expect(agg).toMatchObject({ count: 51, sum: 1275 });
    } finally {
      await server.close();
    }
  });
});
