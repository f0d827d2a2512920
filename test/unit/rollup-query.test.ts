import { describe, expect, test } from 'vitest';
import { fieldKinds, rollupPoints, rollupQuery } from '../../src/rollup/rollup-query.js';
import { hourRuns } from '../../src/rollup/rollup-computer.js';
import { touchedHours } from '../../src/rollup/hour-marker.js';
import { INTEGER_FIELDS } from '../../src/influx/field-values.js';
import { KeyCache } from '../../src/influx/keys.js';
import { encodePoint } from '../../src/influx/line-protocol.js';

const H = 3_600_000;

describe('rollup query', () => {
  test('fields are split by type; a field numeric anywhere is numeric', () => {
    expect(
      fieldKinds([
        { fieldKey: 'temp', fieldType: 'float' },
        { fieldKey: 'mode', fieldType: 'string' },
        { fieldKey: 'door', fieldType: 'boolean' },
        { fieldKey: 'mixed', fieldType: 'string' },
        { fieldKey: 'mixed', fieldType: 'float' },
        { fieldKey: 'code', fieldType: 'integer' },
      ]),
    ).toEqual({ numeric: ['code', 'mixed', 'temp'], other: ['door', 'mode'] });
  });

  test('one statement: numeric mean/min/max/count, other last/count, quoted names, hour grid, one device', () => {
    const q = rollupQuery({ numeric: ['t"x'], other: ['mode'] }, 2 * H, 5 * H, "dev'1");
    expect(q).toBe(
      'SELECT mean("t\\"x") AS "t\\"x_mean", min("t\\"x") AS "t\\"x_min", max("t\\"x") AS "t\\"x_max", sum("t\\"x") AS "t\\"x_sum", count("t\\"x") AS "t\\"x_count", ' +
        'last("mode") AS "mode_last", count("mode") AS "mode_count" FROM "device_data" ' +
        `WHERE "device_id" = 'dev\\'1' AND time >= ${2 * H}ms AND time < ${5 * H}ms GROUP BY time(1h), "device_id" fill(none)`,
    );
    expect(rollupQuery({ numeric: ['t'], other: [] }, 0, H)).not.toContain('"device_id" =');
  });

  test('rows become device_data_1h points without the null aggregates', () => {
    const points = rollupPoints([
      {
        name: 'device_data',
        tags: { device_id: 'a' },
        columns: ['time', 't_mean', 't_count', 'mode_last', 'mode_count'],
        values: [
          [0, 1.5, 2, null, null],
          [H, null, null, 'eco', 1],
        ],
      },
    ]);
    expect(points).toEqual([
      { measurement: 'device_data_1h', deviceId: 'a', time: 0, fields: { t_mean: 1.5, t_count: 2 } },
      { measurement: 'device_data_1h', deviceId: 'a', time: H, fields: { mode_last: 'eco', mode_count: 1 } },
    ]);
  });

  test('counts are written as integers, means as floats', () => {
    expect(INTEGER_FIELDS.device_data_1h.has('t_count')).toBe(true);
    const line = encodePoint(
      { measurement: 'device_data_1h', deviceId: 'a', time: 0, fields: { t_mean: 2, t_count: 2, mode_last: 'eco' } },
      new KeyCache(),
      { absent: 0, problems: [] },
    );
    expect(line).toBe('device_data_1h,device_id=a t_mean=2,t_count=2i,mode_last="eco" 0');
  });
});

describe('hour runs and touched hours', () => {
  test.each([
    [
      [3 * H + 5, H, 2 * H, 2 * H + 1, 7 * H],
      10,
      [
        [H, 4 * H],
        [7 * H, 8 * H],
      ],
    ],
    [
      [0, H, 2 * H, 3 * H, 4 * H],
      2,
      [
        [0, 2 * H],
        [2 * H, 4 * H],
        [4 * H, 5 * H],
      ],
    ],
    [[], 5, []],
  ])('%o in runs of at most %i hours', (hours, max, runs) => {
    expect(hourRuns(hours, max)).toEqual(runs);
  });

  test('only device_data points count, per device and hour', () => {
    const touched = touchedHours([
      { measurement: 'device_data', deviceId: 'a', time: H + 1, fields: {} },
      { measurement: 'device_data', deviceId: 'a', time: H + 2, fields: {} },
      { measurement: 'device_data', deviceId: 'b', time: 5 * H, fields: {} },
      { measurement: 'device_data', deviceId: 'a', time: 3 * H, fields: {} },
      { measurement: 'device_status', deviceId: 'c', time: 0, fields: {} },
      { measurement: 'device_data', deviceId: 'a', time: Number.NaN, fields: {} },
    ]);
    expect([...touched].map(([d, h]) => [d, [...h]])).toEqual([
      ['a', [H, 3 * H]],
      ['b', [5 * H]],
    ]);
  });
});
