import { expect, test } from 'vitest';
import type { DataRow, UnreadableRow } from '../../src/platform/api.js';
import { readRow } from '../../src/platform/answers.js';

test('history rows are read with any timestamp form; an unreadable one is set aside naming it', () => {
  const rows: DataRow[] = [];
  const unreadable: UnreadableRow[] = [];
  const raws = [
    { timestamp: '2017-02-13T12-00-00-000', a: 1 },
    { timestamp: 1486958401000, a: 2 },
    { timestamp: 1486958402, a: 3 },
    { timestamp: '1486958403.5', a: 4 },
    { timestamp: '2017-02-13T04:00:04.000Z', a: 5 },
    { timestamp: '2017-02-13T12:00:05+08:00', a: 6 },
    { timestamp: '2017-02-13T12:00:06', a: 7 },
    { timestamp: '2017-02-13T12:00:07.000+0900', a: 8 },
    { timestamp: 'yesterday', a: 9 },
  ];
  for (const raw of raws) readRow(raw, 'Asia/Shanghai', rows, unreadable);
  expect(rows.map((r) => [r.time, r.values.a])).toEqual([
    [1486958400000, 1],
    [1486958401000, 2],
    [1486958402000, 3],
    [1486958403500, 4],
    [1486958404000, 5],
    [1486958405000, 6],
    [1486958406000, 7],
    [1486958407000 - 3_600_000, 8],
  ]);
  expect(unreadable).toEqual([
    { reason: expect.stringContaining('unreadable platform timestamp "yesterday": expected the form'), raw: raws[8] },
  ]);
});
