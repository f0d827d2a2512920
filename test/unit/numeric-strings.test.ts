import { describe, expect, test } from 'vitest';
import { KeyCache } from '../../src/influx/keys.js';
import { encodePoint, storableFields, type EncodeReport } from '../../src/influx/line-protocol.js';
import { decimalValue, NumericStrings } from '../../src/influx/numeric-strings.js';

describe('the numeric-string rule', () => {
  test.each([
    ['21.5', 21.5],
    ['-3', -3],
    ['+2.5e-3', 0.0025],
    ['1E3', 1000],
    ['0', 0],
    ['-0.0', -0],
    ['007', 7],
    ['00.50', 0.5],
  ])('%s is the number %d', (s, n) => {
    expect(decimalValue(s)).toBe(n);
  });

  test.each([
    '',
    ' 21.5',
    '21.5 ',
    '0x1A',
    '.5',
    '5.',
    '1e',
    '1,5',
    '1_000',
    'Infinity',
    'NaN',
    '--1',
    '1e999',
    '２１',
    '21.5\n',
  ])('%j stays a string', (s) => {
    expect(decimalValue(s)).toBeUndefined();
  });

  test('datapoints only: a setting message id or a rollup string stays a string; mode string keeps every string', () => {
    const rule = new NumericStrings('number');
    expect(rule.read('device_data', 't', '21.5')).toBe(21.5);
    expect(rule.read('device_setting', 'message_id', '12345')).toBe('12345');
    expect(rule.read('device_data_1h', 't_last', '1')).toBe('1');
    expect(new NumericStrings('string').read('device_data', 't', '21.5')).toBe('21.5');
  });

  test('a kept field is written as a string from then on, in the line and in the values isolated from it', () => {
    const rule = new NumericStrings('number');
    const keys = new KeyCache();
    const report: EncodeReport = { absent: 0, problems: [] };
    const raw = {
      measurement: 'device_data' as const,
      deviceId: 'd',
      time: 5,
      fields: { t: '21.5', h: '40', mode: 'eco', n: 2 },
    };
    expect(encodePoint(raw, keys, report, rule)).toBe('device_data,device_id=d t=21.5,h=40,mode="eco",n=2 5');
    expect(rule.converts('device_data', '21.5')).toBe(true);
    rule.keep('device_data', 't');
    expect(encodePoint(raw, keys, report, rule)).toBe('device_data,device_id=d t="21.5",h=40,mode="eco",n=2 5');
    expect(storableFields({ raw, line: '' }, keys, rule)).toEqual({ t: '21.5', h: 40, mode: 'eco', n: 2 });
    expect(rule.keptFields()).toEqual(['t']);
    expect(report.problems).toEqual([]);
  });
});
