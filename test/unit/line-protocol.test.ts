import { describe, expect, test } from 'vitest';
import { MEASUREMENT, type SinkPoint } from '../../src/influx/api.js';
import { encodeValue, normaliseValue } from '../../src/influx/field-values.js';
import { escapeFieldKey, escapeTagValue, KeyCache, keyProblem, nameProblem } from '../../src/influx/keys.js';
import { encodePoint, storableFields, withFields, type EncodeReport } from '../../src/influx/line-protocol.js';
import { mergeDuplicates } from '../../src/influx/merge-duplicates.js';

const point = (fields: Record<string, unknown>, deviceId = 'dev-1', time = 1_486_958_400_000): SinkPoint => ({
  measurement: MEASUREMENT.data,
  deviceId,
  time,
  fields,
});

describe('normaliseValue', () => {
  test.each([
    ['whole number', 1, 1],
    ['fraction', 21.5, 21.5],
    ['negative', -3, -3],
    ['boolean', true, true],
    ['numeric string stays a string', '42', '42'],
    ['empty string', '', ''],
    ['null', null, null],
    ['undefined', undefined, null],
    ['object as JSON', { lat: 31.2, lng: 121.5 }, '{"lat":31.2,"lng":121.5}'],
    ['array as JSON', [1, 'a', null], '[1,"a",null]'],
    ['bigint as number', 12n, 12],
  ])('%s', (_name, input, expected) => {
    expect(normaliseValue(input)).toEqual(expected);
  });

  test.each([
    ['NaN', Number.NaN, 'value NaN is not a finite number'],
    ['Infinity', Number.POSITIVE_INFINITY, 'value Infinity is not a finite number'],
    ['-Infinity', Number.NEGATIVE_INFINITY, 'value -Infinity is not a finite number'],
    ['function', () => 1, 'value of type function cannot be stored'],
    ['symbol', Symbol('s'), 'value of type symbol cannot be stored'],
  ])('%s is a problem', (_name, input, reason) => {
    expect(normaliseValue(input)).toEqual({ problem: reason });
  });
});

describe('encodeValue', () => {
  test.each([
    [1, '1'],
    [0, '0'],
    [-0, '0'],
    [21.5, '21.5'],
    [1e21, '1e+21'],
    [1e-7, '1e-7'],
    [true, 'true'],
    [false, 'false'],
    ['plain', '"plain"'],
    ['say "hi"', '"say \\"hi\\""'],
    ['back\\slash', '"back\\\\slash"'],
    ['two\nlines', '"two\nlines"'],
  ])('%j -> %s', (input, expected) => {
    expect(encodeValue(input)).toBe(expected);
  });
});

describe('keyProblem', () => {
  test.each([
    ['plain', undefined],
    ['with space, comma=equals "quote"', undefined],
    ['tab\tinside', undefined],
    ['back\\slash inside', undefined],
    ['', 'x is empty'],
    ['new\nline', 'x contains a line break, which line protocol cannot carry'],
    ['carriage\rreturn', 'x contains a line break, which line protocol cannot carry'],
    ['nul\u0000inside', 'x contains a NUL character, which no InfluxQL query can quote'],
    ['other \u0001 control', undefined],
    // backslashes depend on the role of the name: see nameProblem
    ['ends with \\', undefined],
    ['double \\\\ backslash', undefined],
    ['slash before\\ space', undefined],
    ['slash before\\,comma', undefined],
    ['slash before\\=eq', undefined],
    ['温度计 一号', undefined],
    ['lone \ud800 surrogate', 'x is not well-formed Unicode (it holds a lone UTF-16 surrogate)'],
    ['lone \udfff low surrogate', 'x is not well-formed Unicode (it holds a lone UTF-16 surrogate)'],
    ['a pair \ud83d\ude00 is fine', undefined],
  ])('%j', (key, expected) => {
    expect(keyProblem(key, 'x')).toEqual(expected);
  });
});

describe('nameProblem: backslashes InfluxDB cannot carry', () => {
  test.each([
    ['a\\b', 'device id', undefined],
    ['a\\ b', 'device id', undefined],
    ['a\\,b', 'device id', undefined],
    ['a\\', 'device id', "device id ends with a backslash, which InfluxDB's line protocol cannot carry"],
    ['a\\b', 'field name', undefined],
    ['a\\"b', 'field name', undefined],
    ['a\\\\ b', 'field name', undefined],
    ['a\\\\', 'field name', expect.stringContaining('ends with a backslash')],
    ['a\\ b', 'field name', expect.stringContaining('odd number of backslashes before a space, comma or "="')],
    ['\\,b', 'field name', expect.stringContaining('odd number of backslashes')],
    ['a\\\\\\=b', 'field name', expect.stringContaining('odd number of backslashes')],
    ['a\\', 'field name', expect.stringContaining('ends with a backslash')],
    ['time', 'field name', 'field name "time" is reserved in InfluxDB'],
    ['time', 'device id', undefined],
    ['__proto__', 'field name', undefined],
  ] as const)('%j as %s', (key, role, expected) => {
    expect(nameProblem(key, role)).toEqual(expected);
  });

  test('escaping: backslashes as they are, separators escaped; in field keys a quote after a backslash too', () => {
    expect(escapeTagValue('a\\,b "c"=d e')).toBe('a\\\\,b\\ "c"\\=d\\ e');
    expect(escapeFieldKey('a\\,b "c"=d e')).toBe('a\\\\,b\\ "c"\\=d\\ e');
    // a quote after a backslash is escaped: InfluxDB would read `\"` as `"`
    expect(escapeFieldKey('a\\"b\\\\"c')).toBe('a\\\\"b\\\\\\"c');
    const keys = new KeyCache();
    const report: EncodeReport = { absent: 0, problems: [] };
    expect(
      encodePoint({ measurement: 'device_data', deviceId: 'x\\ y', time: 1, fields: { 'k"q': 'v\\' } }, keys, report),
    ).toBe('device_data,device_id=x\\\\ y k"q="v\\\\" 1');
  });
});

describe('prototype names are data', () => {
  const names = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty'];
  const point = (time: number, values: unknown[]): SinkPoint => {
    const fields: Record<string, unknown> = Object.create(null);
    names.forEach((n, i) => (fields[n] = values[i]));
    return { measurement: 'device_data', deviceId: 'd', time, fields };
  };

  test('merging duplicates keeps every name, a later value wins, a later null does not erase', () => {
    const { points } = mergeDuplicates([point(5, [1, 2, 3, 4, 5]), point(5, [10, null, 30, 40, null])]);
    expect(points).toHaveLength(1);
    expect(Object.entries(points[0].fields)).toEqual([
      ['__proto__', 10],
      ['constructor', 2],
      ['prototype', 30],
      ['toString', 40],
      ['hasOwnProperty', 5],
    ]);
  });

  test('encoded, and isolated field by field', () => {
    const keys = new KeyCache();
    const report: EncodeReport = { absent: 0, problems: [] };
    const p = point(7, [1, 'two', true, 4, 5]);
    const line = encodePoint(p, keys, report)!;
    expect(line).toBe(
      'device_data,device_id=d __proto__=1,constructor="two",prototype=true,toString=4,hasOwnProperty=5 7',
    );
    expect(Object.entries(storableFields({ raw: p, line }, keys))).toEqual([
      ['__proto__', 1],
      ['constructor', 'two'],
      ['prototype', true],
      ['toString', 4],
      ['hasOwnProperty', 5],
    ]);
    // a name the point does not have is not found on Object.prototype either
    const sparse = {
      raw: { measurement: 'device_data', deviceId: 'd', time: 7, fields: { a: 1 } } as SinkPoint,
      line: 'x',
    };
    expect(withFields(sparse, ['toString', 'a'], keys)?.line).toBe('device_data,device_id=d a=1 7');
  });
});

describe('encodePoint', () => {
  const keys = new KeyCache();
  /** One point encoded with a report of its own; `point` is what withFields and storableFields take. */
  const encode = (raw: SinkPoint) => {
    const report: EncodeReport = { absent: 0, problems: [] };
    const line = encodePoint(raw, keys, report);
    return { point: line === undefined ? undefined : { raw, line }, ...report };
  };

  test.each([
    ['numbers are floats without suffix', { t: 1, h: 45.5 }, 'device_data,device_id=dev-1 t=1,h=45.5 1486958400000'],
    [
      'mixed types',
      { on: true, mode: 'eco', n: '7' },
      'device_data,device_id=dev-1 on=true,mode="eco",n="7" 1486958400000',
    ],
    ['null leaves the field out', { a: 1, b: null, c: undefined }, 'device_data,device_id=dev-1 a=1 1486958400000'],
    [
      'nested object is a JSON string',
      { gps: { lat: 1 } },
      'device_data,device_id=dev-1 gps="{\\"lat\\":1}" 1486958400000',
    ],
    ['field name escaping', { 'a b,c=d': 1 }, 'device_data,device_id=dev-1 a\\ b\\,c\\=d=1 1486958400000'],
    [
      'a tab and a lone backslash are carried raw',
      { 'a\tb\\c': 1 },
      'device_data,device_id=dev-1 a\tb\\c=1 1486958400000',
    ],
  ])('%s', (_name, fields, line) => {
    const n = encode(point(fields));
    expect(n.problems).toEqual([]);
    expect(n.point?.line).toBe(line);
  });

  test('device id escaping', () => {
    expect(encode(point({ v: 1 }, 'room 1,a=b')).point?.line).toBe(
      'device_data,device_id=room\\ 1\\,a\\=b v=1 1486958400000',
    );
  });

  test('the status code is the one integer field of the schema', () => {
    const status = {
      measurement: MEASUREMENT.status,
      deviceId: 'd',
      time: 5,
      fields: { online: true, raw_status: 1, source: 'poll' },
    };
    expect(encode(status).point?.line).toBe('device_status,device_id=d online=true,raw_status=1i,source="poll" 5');
    const odd = encode({ ...status, fields: { online: false, raw_status: 1.5 } });
    expect(odd.point?.line).toBe('device_status,device_id=d online=false 5');
    expect(odd.problems).toEqual([
      {
        field: 'raw_status',
        reason: 'field "raw_status": value 1.5 is not a whole number (the schema stores "raw_status" as integer)',
      },
    ]);
    expect(encode(point({ raw_status: 1 })).point?.line).toBe('device_data,device_id=dev-1 raw_status=1 1486958400000');
    expect(withFields(encode(status).point!, ['raw_status'], keys)?.line).toBe(
      'device_status,device_id=d raw_status=1i 5',
    );
  });

  test('counts absent values', () => {
    expect(encode(point({ a: 1, b: null, c: undefined })).absent).toBe(2);
  });

  test('NaN and Infinity are problems; the rest of the row is written', () => {
    const n = encode(point({ a: Number.NaN, b: 2, c: Number.POSITIVE_INFINITY }));
    expect(n.point?.line).toBe('device_data,device_id=dev-1 b=2 1486958400000');
    expect(storableFields(n.point!, keys)).toEqual({ b: 2 });
    expect(n.problems).toEqual([
      { field: 'a', reason: 'field "a": value NaN is not a finite number' },
      { field: 'c', reason: 'field "c": value Infinity is not a finite number' },
    ]);
  });

  test.each([
    [
      'every value unusable',
      point({ a: Number.NaN }),
      'no storable field: field "a": value NaN is not a finite number',
    ],
    ['only nulls', point({ a: null }), 'no storable field: every value is null or missing'],
    ['no fields', point({}), 'no storable field: every value is null or missing'],
    ['empty device id', point({ a: 1 }, ''), 'device id is empty'],
    [
      'newline in device id',
      point({ a: 1 }, 'a\nb'),
      'device id contains a line break, which line protocol cannot carry',
    ],
    ['fractional time', point({ a: 1 }, 'd', 1.5), 'time 1.5 is not whole epoch milliseconds'],
    ['NaN time', point({ a: 1 }, 'd', Number.NaN), 'time NaN is not whole epoch milliseconds'],
  ])('whole point unusable: %s', (_name, p, reason) => {
    const n = encode(p);
    expect(n.point).toBeUndefined();
    expect(n.problems).toEqual([{ reason }]);
  });

  test('a field name with a NUL is a problem for that value only (no InfluxQL query could quote it)', () => {
    const n = encode(point({ 'a\u0000b': 1, ok: 2 }));
    expect(n.point?.line).toBe('device_data,device_id=dev-1 ok=2 1486958400000');
    expect(n.problems).toEqual([
      {
        field: 'a\u0000b',
        reason: 'field name "a\\u0000b" contains a NUL character, which no InfluxQL query can quote',
      },
    ]);
  });

  test('empty field name is a problem for that value only', () => {
    const n = encode(point({ '': 1, ok: 2 }));
    expect(n.point?.line).toBe('device_data,device_id=dev-1 ok=2 1486958400000');
    expect(n.problems).toEqual([{ field: '', reason: 'field name "" is empty' }]);
  });

  test('withFields rebuilds the line with some fields only', () => {
    const n = encode(point({ a: 1, b: 'x', c: true }));
    expect(withFields(n.point!, ['c', 'b'], keys)?.line).toBe('device_data,device_id=dev-1 c=true,b="x" 1486958400000');
    expect(withFields(n.point!, ['zzz'], keys)).toBeUndefined();
  });
});

describe('encodePoint (one report for many points)', () => {
  const keys = new KeyCache();

  test('good points add nothing to the report; problems and absent values add up across points', () => {
    const report = { absent: 0, problems: [] as Array<{ field?: string; reason: string }> };
    expect(encodePoint(point({ a: 1, b: null }), keys, report)).toBe('device_data,device_id=dev-1 a=1 1486958400000');
    expect(report).toEqual({ absent: 1, problems: [] });
    expect(encodePoint(point({ a: Number.NaN, b: 2 }), keys, report)).toBe(
      'device_data,device_id=dev-1 b=2 1486958400000',
    );
    expect(encodePoint(point({ c: undefined }), keys, report)).toBeUndefined();
    expect(report).toEqual({
      absent: 2,
      problems: [
        { field: 'a', reason: 'field "a": value NaN is not a finite number' },
        { reason: 'no storable field: every value is null or missing' },
      ],
    });
  });

  test("a point with no storable field sums up only its own problems, earlier points' stay as they were", () => {
    const report = { absent: 0, problems: [{ reason: 'earlier' }] };
    expect(encodePoint(point({ x: Number.POSITIVE_INFINITY, '': 1 }), keys, report)).toBeUndefined();
    expect(report.problems).toEqual([
      { reason: 'earlier' },
      { reason: 'no storable field: field "x": value Infinity is not a finite number; field name "" is empty' },
    ]);
  });
});

describe('mergeDuplicates', () => {
  test('same series and time merge field by field; later wins; null does not erase', () => {
    const { points, merged } = mergeDuplicates([
      point({ a: 1, b: 2 }),
      point({ x: 9 }, 'other'),
      point({ b: 3, c: 4, a: null }),
      point({ a: 5 }, 'dev-1', 1),
    ]);
    expect(merged).toBe(1);
    expect(points).toEqual([point({ a: 1, b: 3, c: 4 }), point({ x: 9 }, 'other'), point({ a: 5 }, 'dev-1', 1)]);
  });

  test('counts fields two points of one series and time disagree on (not a repeat, not a null, not a new field)', () => {
    const { points, conflicts } = mergeDuplicates([
      point({ a: 1, b: 2, j: { x: [1] } }),
      point({ a: 1, b: 3, c: 4, j: { x: [1] } }),
      point({ b: 5, a: null }),
      point({ a: 1 }, 'dev-2'),
    ]);
    expect(conflicts).toBe(2); // b: 2 -> 3 -> 5
    expect(points[0].fields).toEqual({ a: 1, b: 5, c: 4, j: { x: [1] } });
  });

  test('out-of-order times still find their duplicates', () => {
    const { points, merged } = mergeDuplicates([
      point({ a: 1 }, 'd', 30),
      point({ a: 2 }, 'd', 10),
      point({ a: 3 }, 'd', 20),
      point({ b: 4 }, 'd', 10),
      point({ c: 5 }, 'd', 30),
      point({ a: 6 }, 'd', 40),
      point({ a: 7 }, 'd', 40),
    ]);
    expect(merged).toBe(3);
    expect(points).toEqual([
      point({ a: 1, c: 5 }, 'd', 30),
      point({ a: 2, b: 4 }, 'd', 10),
      point({ a: 3 }, 'd', 20),
      point({ a: 7 }, 'd', 40),
    ]);
  });

  test('different measurements do not merge', () => {
    const a = point({ a: 1 });
    const b = { ...point({ online: true }), measurement: MEASUREMENT.status };
    expect(mergeDuplicates([a, b])).toEqual({ points: [a, b], merged: 0, conflicts: 0 });
  });
});
