import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createRedis } from '../../src/base/redis.js';
import { QUEUE, type IngestBatchJob } from '../../src/base/jobs.js';
import { EnqueueError, IngestProducer } from '../../src/push/ingest-producer.js';
import { deleteRedisPrefix, REDIS_URL, testPrefix } from '../helpers/services.js';
import { isRetryable } from '../../src/base/retry.js';

/** The webhook's group commit against real Redis/BullMQ: every push stored exactly once, in few jobs. */

const prefix = testPrefix('producer');
const connection = createRedis(REDIS_URL, { maxRetriesPerRequest: 1, enableOfflineQueue: false });
let queue: Queue<IngestBatchJob>;

beforeAll(async () => {
  queue = new Queue<IngestBatchJob>(QUEUE.ingest, { connection, prefix });
  await queue.waitUntilReady();
});

afterAll(async () => {
  await queue.close();
  await connection.quit();
  await deleteRedisPrefix(prefix);
});

const push = (i: number) => ({
  msgType: 2 as const,
  body: { device_id: `d${i}`, data: [{ timestamp: '2017-02-13T12-00-00-000', v: i }] },
});

describe('IngestProducer', () => {
  test('300 pushes at once: each resolves once stored, all stored exactly once, in far fewer jobs', async () => {
    const producer = new IngestProducer(queue, { maxInFlight: 2, maxPushes: 100 });
    await Promise.all(Array.from({ length: 300 }, (_, i) => producer.add(push(i), 1000 + i)));
    const jobs = await queue.getJobs(['waiting']);
    const stored = jobs.flatMap((j) => j.data.pushes);
    expect(stored.length).toBe(300);
    expect(stored.map((p) => p.receivedAt).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 300 }, (_, i) => 1000 + i),
    );
    expect(stored.find((p) => p.receivedAt === 1007)).toEqual({ msgType: 2, receivedAt: 1007, body: push(7).body });
    expect(jobs.length).toBeLessThanOrEqual(10);
    expect(jobs.every((j) => j.data.pushes.length <= 100)).toBe(true);
    expect(jobs[0].opts.attempts).toBe(50_000);
    await producer.close();
    await queue.drain();
  });

  test('pushes that arrive in the same turn of the event loop are stored as one job', async () => {
    const producer = new IngestProducer(queue, { maxInFlight: 2 });
    // 20 requests read in one poll of the sockets: the old eager flush made 2 one-push jobs first
    await Promise.all(Array.from({ length: 20 }, (_, i) => producer.add(push(i), 2000 + i)));
    const jobs = await queue.getJobs(['waiting']);
    expect(jobs.length).toBe(1);
    expect(jobs[0].name).toBe('batch');
    expect(jobs[0].data.pushes.map((p) => p.receivedAt)).toEqual(Array.from({ length: 20 }, (_, i) => 2000 + i));
    await producer.close();
    await queue.drain();
  });

  test('a single push is stored at once as its own job', async () => {
    const producer = new IngestProducer(queue);
    await producer.add(push(1), 5);
    const jobs = await queue.getJobs(['waiting']);
    expect(jobs.map((j) => [j.name, j.data])).toEqual([
      ['msg2', { pushes: [{ msgType: 2, receivedAt: 5, body: push(1).body }] }],
    ]);
    await queue.drain();
  });

  test('when Redis refuses, every waiting push fails with a retryable EnqueueError', async () => {
    const closed = createRedis('redis://127.0.0.1:1', {
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      lazyConnect: true,
      retryStrategy: () => null,
    });
    closed.on('error', () => undefined);
    const dead = new Queue<IngestBatchJob>(QUEUE.ingest, { connection: closed, prefix });
    dead.on('error', () => undefined);
    const producer = new IngestProducer(dead, { timeoutMs: 2000 });
    const outcomes = await Promise.allSettled(Array.from({ length: 5 }, (_, i) => producer.add(push(i), i)));
    expect(
      outcomes.every((o) => o.status === 'rejected' && o.reason instanceof EnqueueError && isRetryable(o.reason)),
    ).toBe(true);
    await dead.close().catch(() => undefined);
    closed.disconnect();
  });
});
