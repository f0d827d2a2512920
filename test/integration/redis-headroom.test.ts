import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Redis } from 'ioredis';
import { startRedisServer, type ChildServer } from '../helpers/services.js';
import { headroomCheck } from '../../src/push/redis-headroom.js';
import { startStack, type Stack } from './push-stack.js';

/**
 * A Redis with maxmemory 48 MB and noeviction filled by pushes: the webhook refuses new pushes
 * before Redis is full, the worker can still take and finish every job (its scripts are not
 * refused with OOM), memory is freed, pushes are taken again without anyone raising maxmemory,
 * and every acknowledged push is in InfluxDB.
 */

const ROWS = 100;
const pad = (n: number, w: number) => String(n).padStart(w, '0');
/** push i's rows: distinct times, a 200-byte string each so that Redis fills in a few thousand pushes */
const pushBody = (i: number) => ({
  msg_type: 2,
  device_id: `full-${i % 20}`,
  data: Array.from({ length: ROWS }, (_, k) => {
    const n = i * ROWS + k;
    return {
      timestamp: `2017-02-13T${pad(Math.floor(n / 3_600_000) % 24, 2)}-${pad(Math.floor(n / 60_000) % 60, 2)}-${pad(Math.floor(n / 1000) % 60, 2)}-${pad(n % 1000, 3)}`,
      v: k,
      s: 'x'.repeat(200),
    };
  }),
});

async function post(url: string, body: unknown): Promise<{ status: number; message: string }> {
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const json = (await res.json()) as { result_message?: string };
    return { status: res.status, message: json.result_message ?? '' };
  } catch (err) {
    return { status: 0, message: (err as Error).message };
  }
}

describe('Redis near maxmemory (noeviction)', () => {
  let redis: ChildServer;
  let s: Stack;
  let probe: Redis;
  beforeAll(async () => {
    redis = await startRedisServer({ args: ['--maxmemory', '48mb', '--maxmemory-policy', 'noeviction'] });
    // the worker starts once Redis is near full: the load outruns no worker on this shared machine otherwise
    s = await startStack({ redisUrl: redis.url, worker: false });
    probe = new Redis(redis.url);
  });
  afterAll(async () => {
    probe?.disconnect();
    await s?.close();
    await redis?.close();
  });

  test('pushes are refused before Redis is full, then taken again once the worker drained it; every acknowledged push lands', async () => {
    let acked = 0;
    let next = 0;
    const answers: Array<{ status: number; message: string }> = [];
    // push load, 20 at a time, until the webhook refuses for headroom
    for (let round = 0; round < 400 && !answers.some((a) => a.status === 503); round++) {
      const batch = await Promise.all(Array.from({ length: 20 }, () => post(s.url, pushBody(next++))));
      answers.push(...batch);
      acked += batch.filter((a) => a.status === 200).length;
    }
    const refused = answers.filter((a) => a.status !== 200);
    expect(refused.length).toBeGreaterThan(0);
    // refused for headroom, never because Redis itself refused the write
    expect(
      refused.every(
        (a) =>
          a.status === 503 &&
          /^temporarily unavailable, send again: Redis near full: [\d.]+ MB used of maxmemory 48\.0 MB/.test(a.message),
      ),
    ).toBe(true);
    expect(answers.some((a) => /OOM/.test(a.message))).toBe(false);
    const info = await probe.info('memory');
    const used = Number(/^used_memory:(\d+)/m.exec(info)![1]);
    expect(used).toBeLessThan(48 * 1024 * 1024);
    expect(used).toBeGreaterThan(0.8 * 48 * 1024 * 1024);
    expect(await headroomCheck(s.headroom).check()).toEqual({ degraded: expect.stringMatching(/^Redis near full: /) });
    // still refused while nothing drains
    expect((await post(s.url, pushBody(next++))).status).toBe(503);

    // the worker takes and finishes the jobs in the near-full Redis; maxmemory is not touched
    s.worker = s.app.startIngestWorker({ registry: s.app.registry });
    const back = await s.until(
      'a push taken again',
      () => post(s.url, pushBody(next++)),
      (a) => a.status === 200,
      120_000,
    );
    expect(back.message).toBe('ok');
    acked++;
    expect(await headroomCheck(s.headroom).check()).toBe(true);
    expect(((await probe.config('GET', 'maxmemory')) as string[])[1]).toBe(String(48 * 1024 * 1024));

    const counted = await s.until(
      'every acknowledged row in InfluxDB',
      () => s.rows('SELECT count(v) FROM device_data'),
      (r) => Number(r[0]?.count) >= acked * ROWS,
      120_000,
    );
    expect(Number(counted[0].count)).toBe(acked * ROWS);
    expect(await s.queue.queue.count()).toBe(0);
  }, 300_000);
});
