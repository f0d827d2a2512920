import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startInfluxd, startRedisServer, type ChildServer } from '../helpers/services.js';
import { startStack, type Stack } from './push-stack.js';

/**
 * Outages: with Redis down no answer may say ok (the platform must send again); with InfluxDB down
 * pushes are still taken (they wait in Redis) and land, all of them, once it is back.
 */

const TS = (s: number) => `2017-02-13T12-00-${String(s).padStart(2, '0')}-000`;
const OK = { result_code: 0, result_message: 'ok' };

async function post(
  url: string,
  body: unknown,
): Promise<{ status: number; json: { result_code?: number; result_message?: string } }> {
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: res.status, json: (await res.json()) as { result_code?: number } };
  } catch (err) {
    return { status: 0, json: { result_message: (err as Error).message } };
  }
}

describe('Redis down', () => {
  let redis: ChildServer;
  let s: Stack;
  beforeAll(async () => {
    redis = await startRedisServer();
    s = await startStack({ redisUrl: redis.url });
  });
  afterAll(async () => {
    await s?.close();
    await redis?.close();
  });

  test('no response ever says ok while Redis cannot store the push; pushes are taken again once it is back', async () => {
    expect(await post(s.url, { msg_type: 2, device_id: 'r-before', data: [{ timestamp: TS(0), v: 1 }] })).toEqual({
      status: 200,
      json: OK,
    });
    await s.until(
      'first point',
      () => s.rows('SELECT * FROM device_data'),
      (r) => r.length === 1,
    );

    await redis.kill();
    // pushes racing the outage, then during it: none may be answered ok
    const answers = [];
    for (let round = 0; round < 10; round++) {
      answers.push(
        ...(await Promise.all(
          Array.from({ length: 20 }, (_, i) =>
            post(s.url, { msg_type: '2', device_id: `r-down-${round}-${i}`, data: [{ timestamp: TS(i), v: i }] }),
          ),
        )),
      );
    }
    expect(answers.length).toBe(200);
    expect(answers.filter((a) => a.status === 200 || a.json.result_code === 0)).toEqual([]);
    expect(answers.every((a) => a.status === 503 && a.json.result_code === 9)).toBe(true);
    expect(answers[0].json.result_message).toMatch(/^temporarily unavailable, send again: /);
    // a malformed body cannot be kept either: asked to send again rather than told it is lost
    const bad = await post(s.url, { msg_type: 7 });
    expect(bad.status).toBe(503);

    await redis.start();
    const back = await s.until(
      'push accepted after Redis restart',
      () => post(s.url, { msg_type: 2, device_id: 'r-after', data: [{ timestamp: TS(5), v: 5 }] }),
      (a) => a.status === 200,
    );
    expect(back.json).toEqual(OK);
    const rows = await s.until(
      'point after restart',
      () => s.rows(`SELECT * FROM device_data WHERE device_id = 'r-after'`),
      (r) => r.length >= 1,
    );
    expect(rows.map((r) => r.v)).toEqual([5]);
    // nothing that was refused reached InfluxDB
    const series = await s.rows('SHOW SERIES');
    expect(series.map((x) => x.key).sort()).toEqual([
      'device_data,device_id=r-after',
      'device_data,device_id=r-before',
    ]);
  });
});

describe('InfluxDB down', () => {
  let influx: ChildServer;
  let s: Stack;
  beforeAll(async () => {
    influx = await startInfluxd();
    // the writer gives up quickly here, so the job's own backoff (BullMQ) is what waits
    s = await startStack({
      influxUrl: influx.url,
      writerRetry: { maxAttempts: 2, maxElapsedMs: 500, baseDelayMs: 50, maxDelayMs: 100 },
    });
  });
  afterAll(async () => {
    await s?.close();
    await influx?.close();
  });

  test('pushes are acknowledged, wait in Redis with retries, and all land once InfluxDB is back', async () => {
    expect((await post(s.url, { msg_type: 1, device_id: 'i-dev', device_status: 0 })).status).toBe(200);
    await s.until(
      'first point',
      () => s.rows('SELECT * FROM device_status'),
      (r) => r.length === 1,
    );

    await influx.kill();
    const pushes = Array.from({ length: 30 }, (_, p) => ({
      msg_type: 2,
      device_id: 'i-dev',
      data: Array.from({ length: 10 }, (_, k) => ({
        timestamp: `2017-02-13T12-${String(p).padStart(2, '0')}-${String(k).padStart(2, '0')}-000`,
        v: p * 10 + k,
      })),
    }));
    const answers = await Promise.all(pushes.map((b) => post(s.url, b)));
    expect(answers.every((a) => a.status === 200 && a.json.result_code === 0)).toBe(true);

    // the jobs fail and are scheduled again, not dropped
    const counts = await s.until(
      'jobs retried',
      () => s.queue.queue.getJobCounts('delayed', 'failed', 'waiting', 'active'),
      (c) => c.delayed > 0,
    );
    expect(counts.failed).toBe(0);

    await influx.start();
    const rows = await s.until(
      'every pushed point',
      () => s.rows(`SELECT v FROM device_data WHERE device_id = 'i-dev'`),
      (r) => r.length === 300,
      120_000,
    );
    expect(rows.map((r) => r.v).sort((a, b) => (a as number) - (b as number))).toEqual(
      Array.from({ length: 300 }, (_, i) => i),
    );
    const left = await s.until(
      'queue empty',
      () => s.queue.queue.getJobCounts('delayed', 'failed', 'waiting', 'active'),
      (c) => c.delayed + c.waiting + c.active === 0,
    );
    expect(left.failed).toBe(0);
    expect(await s.deadLetters.count()).toBe(0);
  });
});
