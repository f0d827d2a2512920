import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { formatPlatformTime } from '../../src/platform/time-format.js';
import type { SinkPoint } from '../../src/influx/api.js';
import { bodyOfLetter } from '../../src/push/raw-body.js';
import { influxQuery } from '../helpers/services.js';
import { retryRow } from '../../src/app/retry-row.js';
import { parseTime, PLATFORM_KEY, SECRET_KEY, simBackfillRunner, startStack, TZ, type Stack } from './push-stack.js';

/**
 * The push path takes what the pull path takes (issue 10) and alters nothing (issue 13 §4): odd
 * names and values land exactly, unreadable rows are kept as dead letters while the rest of the
 * push lands, and text that is not well-formed Unicode is refused rather than stored as U+FFFD.
 */

let s: Stack;
beforeAll(async () => {
  s = await startStack({ sim: { devices: [{ id: 'pull-dev', key: 'key-pull', cadenceSec: 86_400 }], from: T, to: T } });
});
afterAll(async () => {
  await s?.close();
});

const TS = '2026-11-20T08-00-00-000';
const T = parseTime(TS);

async function post(
  body: string,
): Promise<{ status: number; json: { result_code?: number; result_message?: string } }> {
  const res = await fetch(s.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  return { status: res.status, json: (await res.json()) as { result_code?: number } };
}

/** Every column of the points of one device, by time. */
async function pointsOf(deviceId: string, expectCount: number): Promise<Array<Record<string, unknown>>> {
  const q = `SELECT * FROM device_data WHERE device_id = '${deviceId.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
  const series = await s.until(
    `${expectCount} points of ${deviceId}`,
    () => influxQuery(s.db.name, q, s.db.url),
    (r) => (r[0]?.values.length ?? 0) >= expectCount,
  );
  return series[0].values.map((v) => Object.fromEntries(series[0].columns.map((c, i) => [c, v[i]])));
}

describe('a push may contain what a history page may', () => {
  test('ids and names with spaces, commas, =, quotes, backslashes, non-ASCII, prototype names, null and objects land exactly', async () => {
    const ids = ['温度计 一号', 'dev,1=a "b"', "dev'1", 'dev\\1', 'a\\ b', ' lead'];
    const names = [
      '温 度',
      'a,b=c',
      'q"uote',
      'back\\slash',
      '__proto__',
      'constructor',
      'prototype',
      'toString',
      'hasOwnProperty',
    ];
    for (const [i, id] of ids.entries()) {
      // built as JSON text: "__proto__" must arrive as a datapoint, as it does from the platform
      const values = names
        .map((n, k) => `${JSON.stringify(n)}:${k % 2 ? JSON.stringify(`v\\${i}"${k}`) : i * 10 + k}`)
        .join(',');
      const body = `{"msg_type":2,"device_id":${JSON.stringify(id)},"data":[{"timestamp":"${TS}",${values},"gone":null,"obj":{"x":[1,"y"]}},{"timestamp":"${TS}","only":null}]}`;
      expect(await post(body)).toEqual({ status: 200, json: { result_code: 0, result_message: 'ok' } });
    }
    for (const [i, id] of ids.entries()) {
      const [row] = await pointsOf(id, 1);
      expect(row.device_id).toBe(id);
      expect(row.time).toBe(T);
      for (const [k, n] of names.entries()) expect(row[n], `${id} ${n}`).toBe(k % 2 ? `v\\${i}"${k}` : i * 10 + k);
      expect(row.obj).toBe('{"x":[1,"y"]}');
      expect(row.gone ?? null).toBeNull();
    }
    const fieldKeys = (await s.rows('SHOW FIELD KEYS FROM device_data')).map((f) => f.fieldKey);
    expect(fieldKeys).not.toContain('gone');
    expect(fieldKeys).not.toContain('only');
    expect(await s.deadLetters.count()).toBe(0);
  });

  test('unreadable rows are kept as dead letters with reason and raw content; the readable rows of the push land', async () => {
    const rows = [
      { timestamp: TS, v: 1 },
      { timestamp: '2026-02-30T00-00-00-000', v: 2 },
      7,
      { v: 3 },
      { timestamp: '2026-11-20T08-00-01-000', v: 4 },
    ];
    const body = JSON.stringify({ msg_type: 2, device_id: 'partial', device_key: 'k-partial', data: rows });
    expect(await post(body)).toEqual({ status: 200, json: { result_code: 0, result_message: 'ok' } });
    const points = await pointsOf('partial', 2);
    expect(points.map((p) => [p.time, p.v])).toEqual([
      [T, 1],
      [T + 1000, 4],
    ]);
    const letters = await s.until(
      'three row letters',
      () => s.deadLetters.list(),
      (l) => l.length >= 3,
    );
    const byReason = letters
      .map((l) => [l.kind, l.source, l.deviceId, l.raw, l.reason])
      .sort((a, b) => (String(a[4]) < String(b[4]) ? -1 : 1));
    expect(byReason).toEqual([
      [
        'row',
        'push',
        'partial',
        rows[1],
        expect.stringContaining('"data[1].timestamp" "2026-02-30T00-00-00-000" cannot be read'),
      ],
      ['row', 'push', 'partial', rows[2], '"data[2]" must be an object, got the number 7'],
      [
        'row',
        'push',
        'partial',
        rows[3],
        '"data[3].timestamp" must be a string such as "2017-02-13T12-00-00-000" or epoch milliseconds, got nothing (missing)',
      ],
    ]);
    await s.deadLetters.drop(letters.map((l) => l.id));
  });
});

describe('text that is not well-formed Unicode is refused, never stored as U+FFFD', () => {
  test('two device ids differing only in a lone surrogate: 400 each, kept raw, nothing written', async () => {
    const bodies = ['\\ud800', '\\udbff'].map(
      (lone) => `{"msg_type":2,"device_id":"sensor${lone}","data":[{"timestamp":"${TS}","v":1}]}`,
    );
    for (const body of bodies) {
      const a = await post(body);
      expect(a.status).toBe(400);
      expect(a.json.result_message).toContain('"device_id" "sensor\\ud');
      expect(a.json.result_message).toContain('is not well-formed Unicode');
    }
    const letters = await s.deadLetters.list();
    expect(letters.map((l) => bodyOfLetter(l.raw).toString('utf8')).sort()).toEqual([...bodies].sort());
    expect(letters.every((l) => l.kind === 'push' && l.source === 'webhook')).toBe(true);
    expect(await s.rows(`SELECT * FROM device_data WHERE device_id =~ /^sensor/`)).toEqual([]);
    await s.deadLetters.drop(letters.map((l) => l.id));
  });

  test('a lone surrogate in one row: that row is a dead letter (escaped, not replaced), the other lands', async () => {
    const body = `{"msg_type":2,"device_id":"surr","data":[{"timestamp":"${TS}","s":"ok"},{"timestamp":"${TS}","s":"x\\udc00y"}]}`;
    expect((await post(body)).status).toBe(200);
    const points = await pointsOf('surr', 1);
    expect(points.map((p) => p.s)).toEqual(['ok']);
    const [letter] = await s.until(
      'row letter',
      () => s.deadLetters.list(),
      (l) => l.length === 1,
    );
    expect(letter).toMatchObject({
      kind: 'row',
      deviceId: 'surr',
      reason: '"data[1].s" "x\\udc00y" is not well-formed Unicode (a lone UTF-16 surrogate)',
    });
    // kept as the code unit it was: JSON of the letter carries the escape, not U+FFFD
    expect((letter.raw as { s: string }).s).toBe('x\udc00y');
    // a retry reads the row by the same rules: still refused, never written as U+FFFD
    const [outcome] = await s.deadLetters.retry([letter.id], { row: retryRow({ writer: s.writer, timezone: TZ }) });
    expect(outcome).toMatchObject({
      ok: false,
      error: 'datapoint "s" has the value "x\\udc00y", which is not well-formed Unicode (a lone UTF-16 surrogate)',
    });
    expect((await pointsOf('surr', 1)).map((p) => p.s)).toEqual(['ok']);
    await s.deadLetters.drop([letter.id]);
  });
});

describe('years 0000-0099', () => {
  test('a row in year 50 is read as year 50: InfluxDB refuses it and the dead letter keeps the right time', async () => {
    const body = JSON.stringify({
      msg_type: 2,
      device_id: 'ancient',
      data: [
        { timestamp: '0050-06-01T12-00-00-000', v: 1 },
        { timestamp: TS, v: 2 },
      ],
    });
    expect((await post(body)).status).toBe(200);
    expect((await pointsOf('ancient', 1)).map((p) => p.v)).toEqual([2]);
    const [letter] = await s.until(
      'point letter',
      () => s.deadLetters.list(),
      (l) => l.length === 1,
    );
    expect(letter.kind).toBe('point');
    const point = letter.raw as SinkPoint;
    expect(formatPlatformTime(point.time, TZ)).toBe('0050-06-01T12-00-00-000');
    expect(new Date(point.time).getUTCFullYear()).toBe(50);
    await s.deadLetters.drop([letter.id]);
  });
});

describe('the pull path keeps prototype names and refuses lone surrogates too', () => {
  test('history rows with __proto__, constructor, prototype, toString, hasOwnProperty land; a row with a lone surrogate is a dead letter', async () => {
    const names = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty'];
    // rows as the platform's JSON gives them: "__proto__" an own property. Types as in the push
    // test above (same measurement): a number where it wrote one, a string where it wrote one
    const value = (i: number, k: number) => (k % 2 ? `s${i}${k}` : i * 10 + k);
    const row = (i: number) =>
      JSON.parse(`{${names.map((n, k) => `"${n}":${JSON.stringify(value(i, k))}`).join(',')}}`) as Record<
        string,
        unknown
      >;
    const bad = JSON.parse('{"s":"x\\ud800"}') as Record<string, unknown>;
    s.sim!.addRows('pull-dev', [
      { time: T + 1000, values: row(1) },
      { time: T + 2000, values: bad },
      { time: T + 3000, values: row(3) },
    ]);
    const { runner, close } = simBackfillRunner(s);
    await s.registry.upsert({ id: 'pull-dev', key: 'key-pull' }, 'cli');
    try {
      await runner.run({ deviceId: 'pull-dev', from: T, to: T + 60_000, reason: 'manual' });
    } finally {
      await close();
    }
    const points = await pointsOf('pull-dev', 2);
    expect(points.map((p) => [p.time, ...names.map((n) => p[n])])).toEqual([
      [T + 1000, 10, 's11', 12, 's13', 14],
      [T + 3000, 30, 's31', 32, 's33', 34],
    ]);
    expect(points.every((p) => p.s === undefined || p.s === null)).toBe(true);
    const letters = await s.deadLetters.list();
    const rowLetters = letters.filter((l) => l.deviceId === 'pull-dev');
    expect(rowLetters.map((l) => [l.kind, l.source, l.reason])).toEqual([
      [
        'row',
        'pull',
        'datapoint "s" has the value "x\\ud800", which is not well-formed Unicode (a lone UTF-16 surrogate)',
      ],
    ]);
    expect((rowLetters[0].raw as { s: string }).s).toBe('x\ud800');
    await s.deadLetters.drop(rowLetters.map((l) => l.id));
  });
});
