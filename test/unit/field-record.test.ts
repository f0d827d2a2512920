import { describe, expect, test } from 'vitest';
import { fieldRecord } from '../../src/base/field-record.js';
import { MEASUREMENT, type SinkPoint } from '../../src/influx/api.js';
import { KeyCache } from '../../src/influx/keys.js';
import { storableFields } from '../../src/influx/line-protocol.js';
import { mergeDuplicates } from '../../src/influx/merge-duplicates.js';
import type { DataRow, UnreadableRow } from '../../src/platform/api.js';
import { readRow } from '../../src/platform/answers.js';
import { dataPoints } from '../../src/push/ingest.js';

const NAMES = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__'];
/** As JSON.parse (the platform's answers, pushes, BullMQ jobs) gives them: every name an own property. */
const parsed = (extra: Record<string, unknown> = {}) =>
  JSON.parse(
    `{${[...NAMES.map((n, i) => `"${n}":${i + 1}`), ...Object.entries(extra).map(([k, v]) => `"${k}":${JSON.stringify(v)}`)].join(',')}}`,
  ) as Record<string, unknown>;

/** Every name an own, plain value, in order; nothing inherited from Object.prototype. */
function expectPlain(record: Record<string, unknown>, values: unknown[] = NAMES.map((_, i) => i + 1)): void {
  expect(Object.entries(record)).toEqual(NAMES.map((n, i) => [n, values[i]]));
  for (const n of NAMES) expect(Object.hasOwn(record, n), n).toBe(true);
  expect(Object.prototype.isPrototypeOf(record)).toBe(false);
  expect('isPrototypeOf' in record).toBe(false);
}

describe('fieldRecord', () => {
  test('names of Object.prototype are own fields; nothing is inherited', () => {
    const r = fieldRecord<number>();
    expect('toString' in r).toBe(false);
    expect(r.constructor).toBeUndefined();
    NAMES.forEach((n, i) => (r[n] = i + 1));
    expectPlain(r);
    // "__proto__" was stored, the prototype is still the shared empty one
    expect(Object.getPrototypeOf(Object.getPrototypeOf(r))).toBeNull();
    expect(Object.getPrototypeOf(r)).toBe(Object.getPrototypeOf(fieldRecord()));
    expect(Object.keys(Object.getPrototypeOf(r))).toEqual([]);
  });

  test('the shared prototype cannot be changed through a record', () => {
    const r = fieldRecord<unknown>();
    expect(Object.isFrozen(Object.getPrototypeOf(r))).toBe(true);
    r.x = 1;
    expect('x' in fieldRecord()).toBe(false);
  });
});

describe('every producer of field objects keeps prototype names as data', () => {
  test('readRow (history pages, current datapoints)', () => {
    const rows: DataRow[] = [];
    const unreadable: UnreadableRow[] = [];
    readRow(parsed({ timestamp: '2017-02-13T12-00-00-000' }), 'Asia/Shanghai', rows, unreadable);
    expect(unreadable).toEqual([]);
    expectPlain(rows[0].values);
  });

  test('dataPoints (msg_type 2 pushes)', () => {
    const [point] = dataPoints(
      { msg_type: 2, device_id: 'd', data: [parsed({ timestamp: 't' }) as never] } as never,
      () => 5,
    );
    expectPlain(point.fields);
  });

  test('storableFields and mergeDuplicates (the writer)', () => {
    const keys = new KeyCache();
    const p: SinkPoint = { measurement: MEASUREMENT.data, deviceId: 'd', time: 7, fields: parsed() };
    expectPlain(storableFields({ raw: p, line: '' }, keys));
    const later: SinkPoint = { ...p, fields: JSON.parse('{"__proto__":10,"toString":null}') };
    const { points, merged } = mergeDuplicates([p, later]);
    expect(merged).toBe(1);
    expectPlain(points[0].fields, [10, 2, 3, 4, 5, 6, 7]);
  });
});
