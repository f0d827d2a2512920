import { afterAll, describe, expect, test } from 'vitest';
import { Redis } from 'ioredis';
import { HttpError, InfluxDB } from '@influxdata/influxdb-client';
import { retryVerdict } from '../../src/base/retry.js';
import { errorToHttp, RESULT_CODE } from '../../src/push/errors-to-http.js';
import { INFLUX_URL, REDIS_URL, freePort, testPrefix } from '../helpers/services.js';

// The errors here are thrown by the real libraries against the real services (or a port nothing
// listens on), not built by hand: the classification must hold for what they actually throw.
describe('errors thrown by the libraries, as they come', () => {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  afterAll(() => redis.quit());

  test('Redis answering with an error (ioredis ReplyError) may pass', async () => {
    // WRONGTYPE on a key of this test's own prefix: a real error answer, nothing left behind
    const key = `${testPrefix('retry')}:s`;
    await redis.set(key, 'x', 'PX', 10_000);
    const err = await redis.lpush(key, 'y').catch((e: unknown) => e);
    await redis.del(key);
    expect((err as Error).message).toMatch(/WRONGTYPE/);
    expect(retryVerdict(err)).toEqual({ retryable: true, declared: true });
  });

  test('a command without a connection (ioredis MaxRetriesPerRequestError) is retryable', async () => {
    const port = await freePort();
    const down = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 0, retryStrategy: () => 50 });
    down.on('error', () => undefined);
    const err = await down.get('x').catch((e: unknown) => e);
    down.disconnect();
    expect((err as Error).message).toMatch(/max retries per request/);
    expect(retryVerdict(err)).toEqual({ retryable: true, declared: true });
    expect(errorToHttp(err)).toMatchObject({
      status: 503,
      resultCode: RESULT_CODE.unavailable,
      message: 'temporarily unavailable, send again',
    });
  });

  test('a connection ioredis gave up on ("Connection is closed.", a plain Error) is retried by default', async () => {
    const port = await freePort();
    const down = new Redis({ host: '127.0.0.1', port, lazyConnect: true, retryStrategy: () => null });
    down.on('error', () => undefined);
    const err = await down.connect().catch((e: unknown) => e);
    down.disconnect();
    expect(err).toBeInstanceOf(Error);
    expect(retryVerdict(err)).toEqual({ retryable: true, declared: false });
  });

  test('fetch to a closed port is retryable', async () => {
    const port = await freePort();
    const err = await fetch(`http://127.0.0.1:${port}/`).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TypeError);
    expect(retryVerdict(err)).toEqual({ retryable: true, declared: true });
  });

  test('InfluxDB refusing a request (HttpError 400) is not retryable', async () => {
    const transport = new InfluxDB({ url: INFLUX_URL, timeout: 10_000 }).transport;
    // /query without q: the server answers 400 "missing required parameter"
    const err = await transport
      .request('/query', '', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' } })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HttpError);
    expect((err as HttpError).statusCode).toBe(400);
    expect(retryVerdict(err)).toEqual({ retryable: false, declared: true });
  });
});
