import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startRedisServer, type ChildServer } from '../helpers/services.js';
import { LogLimiter } from '../../src/base/log-limiter.js';
import { startStack, type Stack } from './push-stack.js';

/** A fault repeated under load writes one line per interval per kind, not one per request. */

test('LogLimiter: one line per kind per interval, the next one counts those not logged', () => {
  let t = 0;
  const lines: Array<Record<string, unknown>> = [];
  const logger = {
    warn: (o: Record<string, unknown>) => void lines.push(o),
    error: (o: Record<string, unknown>) => void lines.push(o),
  };
  const limiter = new LogLimiter({ everyMs: 1000, now: () => t });
  for (let i = 0; i < 5; i++) limiter.log(logger as never, 'warn', 'redis', { i }, 'down');
  limiter.log(logger as never, 'error', 'influxdb', { i: 9 }, 'refused');
  t = 1000;
  limiter.log(logger as never, 'warn', 'redis', { i: 5 }, 'down');
  expect(lines).toEqual([
    { i: 0, logKind: 'redis', notLoggedBefore: 0 },
    { i: 9, logKind: 'influxdb', notLoggedBefore: 0 },
    { i: 5, logKind: 'redis', notLoggedBefore: 4 },
  ]);
});

describe('Redis out for 10 s under push load', () => {
  let redis: ChildServer;
  let s: Stack;
  const lines: string[] = [];
  beforeAll(async () => {
    redis = await startRedisServer();
    s = await startStack({ redisUrl: redis.url, logTo: { write: (l: string) => void lines.push(l) } });
  });
  afterAll(async () => {
    await s?.close();
    await redis?.close();
  });

  test('writes a few dozen log lines, not one per refused push', async () => {
    const post = (i: number) =>
      fetch(s.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          msg_type: 2,
          device_id: `lv-${i % 10}`,
          data: [{ timestamp: '2017-02-13T12-00-00-000', v: i }],
        }),
      })
        .then((r) => r.status)
        .catch(() => 0);
    expect(await post(0)).toBe(200);
    lines.length = 0;
    await redis.kill();
    const end = Date.now() + 10_000;
    const statuses: number[] = [];
    let i = 1;
    while (Date.now() < end) statuses.push(...(await Promise.all(Array.from({ length: 20 }, () => post(i++)))));
    await redis.start();
    await s.until(
      'a push taken again',
      () => post(i++),
      (st) => st === 200,
      60_000,
    );
    expect(statuses.length).toBeGreaterThan(200);
    expect(statuses.filter((st) => st === 200)).toEqual([]);
    // every refused push was answered; the log says so once per 10 s per kind, with counts
    expect(lines.length).toBeLessThanOrEqual(40);
    const notStored = lines
      .map((l) => JSON.parse(l) as { msg: string; notLoggedBefore?: number })
      .filter((l) => l.msg.startsWith('push not stored'));
    expect(notStored.length).toBeGreaterThan(0);
    expect(notStored.length).toBeLessThanOrEqual(3);
    // the lines count what they did not log: about every refused push (and the probes after the restart)
    expect(notStored.reduce((n, l) => n + 1 + (l.notLoggedBefore ?? 0), 0)).toBeGreaterThan(statuses.length / 2);
  }, 120_000);
});
