/**
 * HTTP 429/503 with Retry-After: the platform client against the simulator waits the header's
 * time (not its own backoff), every process on the same prefix waits through the shared request
 * rate, the metric counts, an HTTP date works, an absurd header is capped, and a pause is logged
 * once. Clocks and sleeps are fakes that record each wait (no timed assertions); Redis is real.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { Redis } from 'ioredis';
import { startSimulator, type Simulator } from '../../src/simulator/index.js';
import { ExpeedClient, type PlatformClientOptions } from '../../src/platform/client.js';
import { createTokenEndpoint } from '../../src/platform/token/endpoint.js';
import { TokenBudget } from '../../src/platform/token/budget.js';
import { MAX_PLATFORM_PAUSE_MS, PlatformPause, platformPauseKey } from '../../src/platform/platform-pause.js';
import { RequestRate, rateLimitedPlatform } from '../../src/platform/request-rate.js';
import { PlatformThrottledError } from '../../src/platform/errors.js';
import { createMetrics } from '../../src/ops/metrics.js';
import { countThrottled } from '../../src/ops/platform-metering.js';
import { SecretScrubber } from '../../src/base/secrets.js';
import { REDIS_URL, deleteRedisPrefix, testPrefix } from '../helpers/services.js';

const PLATFORM_KEY = 'pk-throttle-test';
const SECRET_KEY = 'sk-throttle-test-secret';
const TO = Date.UTC(2024, 4, 1, 4);
const FROM = TO - 3_600_000;
const dev1 = { id: 'dev-0001', key: 'key-0001' };
const QUERY = { start: FROM, end: TO, first: 1 as const, limit: 100 };

let sim: Simulator;
let redis: Redis;
let budget: TokenBudget;
let prefix: string;
let n = 0;

/** A process's clock: starts at a whole second, moved only by its own sleeps, which it records. */
function fakeClock(start = Math.ceil(Date.now() / 1000) * 1000 + 10_000) {
  const clock = {
    t: start,
    sleeps: [] as number[],
    now: () => clock.t,
    sleep: async (ms: number) => void (clock.sleeps.push(ms), (clock.t += ms)),
  };
  return clock;
}

function warnings() {
  const lines: Array<{ obj: Record<string, unknown>; msg: string }> = [];
  return {
    lines,
    log: {
      warn: (obj: object, msg?: string) => void lines.push({ obj: obj as Record<string, unknown>, msg: msg ?? '' }),
    } as never,
  };
}

function makeClient(extra: Partial<PlatformClientOptions> = {}): ExpeedClient {
  // a backoff of 1-2 ms: a wait of seconds can only come from the header
  return new ExpeedClient({
    baseUrl: sim.url,
    tokens: budget,
    backoffMs: 1,
    maxBackoffMs: 2,
    timeoutMs: 5000,
    retries: 3,
    ...extra,
  });
}

beforeAll(async () => {
  sim = await startSimulator({
    platformKey: PLATFORM_KEY,
    secretKey: SECRET_KEY,
    devices: [dev1],
    from: FROM,
    to: TO,
    seed: 3,
  });
  redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 2 });
  const tokenPrefix = testPrefix('throttle-token');
  budget = new TokenBudget({
    redis,
    prefix: tokenPrefix,
    fetchToken: createTokenEndpoint({
      baseUrl: sim.url,
      platformKey: PLATFORM_KEY,
      secretKey: SECRET_KEY,
      scrubber: new SecretScrubber([SECRET_KEY]),
    }),
  });
  prefix = tokenPrefix;
});

afterAll(async () => {
  await budget.close();
  await sim.close();
  await deleteRedisPrefix(prefix);
  redis.disconnect();
});

beforeEach(() => {
  sim.faults.reset();
  // each test its own pause: a key under a prefix of its own (deleted with the test prefix)
  n++;
});

const pausePrefix = () => `${prefix}:${n}`;
const historyCalls = () => sim.stats.requests.history ?? 0;

describe('throttled answers pause platform calls', () => {
  test('the client waits the Retry-After seconds through the shared pause, not its backoff, and the page is complete', async () => {
    const clock = fakeClock();
    const pause = new PlatformPause({ redis, prefix: pausePrefix(), now: clock.now, sleep: clock.sleep });
    const client = makeClient({ throttle: pause });
    sim.faults.throttleNext(1, { retryAfter: '2' });
    const before = historyCalls();
    const page = await client.history(dev1, QUERY);
    expect(clock.sleeps).toEqual([2000]);
    expect(historyCalls() - before).toBe(2);
    expect(sim.faults.throttledServed).toBe(1);
    expect(page.rows.length).toBe(60);
    expect(Number(await redis.get(platformPauseKey(pausePrefix())))).toBe(clock.t);
    await client.close();
  });

  test('without a shared pause the retry still waits the header, not the backoff', async () => {
    const delays: number[] = [];
    const client = makeClient({ onRetry: (r) => delays.push(r.delayMs) });
    sim.faults.throttleNext(1, { retryAfter: '1', status: 503 });
    const page = await client.history(dev1, QUERY);
    expect(delays).toEqual([1000]);
    expect(page.rows.length).toBe(60);
    await client.close();
  });

  test('a second process on the same prefix waits for the pause before its own request', async () => {
    const a = fakeClock();
    const b = fakeClock(a.t);
    const metricsA = createMetrics({ defaultMetrics: false });
    const pauseA = new PlatformPause({
      redis,
      prefix: pausePrefix(),
      now: a.now,
      sleep: a.sleep,
      onThrottled: countThrottled(metricsA),
    });
    const clientA = makeClient({ throttle: pauseA, retries: 0 });
    sim.faults.throttleNext(1, { retryAfter: '3' });
    const err = await clientA.history(dev1, QUERY).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PlatformThrottledError);
    expect((err as PlatformThrottledError).retryAfter).toBe('3');
    expect((err as Error).message).toContain('HTTP 429');

    // process B: its own Redis connection, limiter, pause and client; it never saw the 429
    const redisB = new Redis(REDIS_URL, { maxRetriesPerRequest: 2 });
    try {
      const pauseB = new PlatformPause({ redis: redisB, prefix: pausePrefix(), now: b.now, sleep: b.sleep });
      const rateB = new RequestRate({
        redis: redisB,
        prefix: pausePrefix(),
        perSecond: 1000,
        now: b.now,
        sleep: b.sleep,
      });
      const clientB = makeClient({ throttle: pauseB });
      const before = historyCalls();
      const page = await rateLimitedPlatform(clientB, rateB).history(dev1, QUERY);
      expect(b.sleeps).toEqual([3000]);
      expect(historyCalls() - before).toBe(1);
      expect(page.rows.length).toBe(60);
      await clientB.close();
    } finally {
      redisB.disconnect();
    }
    const metric = await metricsA.registry.getSingleMetric('expeed_platform_throttled_total')!.get();
    expect(metric.values).toEqual([{ labels: { endpoint: 'datapoints', status: '429' }, value: 1 }]);
    await clientA.close();
  });

  test('the metric counts every throttled answer, by endpoint and status', async () => {
    const clock = fakeClock();
    const metrics = createMetrics({ defaultMetrics: false });
    const pause = new PlatformPause({
      redis,
      prefix: pausePrefix(),
      now: clock.now,
      sleep: clock.sleep,
      onThrottled: countThrottled(metrics),
    });
    const client = makeClient({ throttle: pause });
    sim.faults.throttleNext(2, { retryAfter: '1', status: 503, endpoint: 'history' });
    sim.faults.throttleNext(1, { retryAfter: '1', endpoint: 'device_status' });
    await client.history(dev1, QUERY);
    const status = await client.deviceStatus(dev1);
    expect(status.online).toBe(true);
    expect(clock.sleeps).toEqual([1000, 1000, 1000]);
    const metric = await metrics.registry.getSingleMetric('expeed_platform_throttled_total')!.get();
    const byLabels = Object.fromEntries(metric.values.map((v) => [`${v.labels.endpoint} ${v.labels.status}`, v.value]));
    expect(byLabels).toEqual({ 'datapoints 503': 2, 'device_status 429': 1 });
    await client.close();
  });

  test('an HTTP-date Retry-After waits until that time', async () => {
    const clock = fakeClock();
    const pause = new PlatformPause({ redis, prefix: pausePrefix(), now: clock.now, sleep: clock.sleep });
    const client = makeClient({ throttle: pause });
    sim.faults.throttleNext(1, { retryAfter: new Date(clock.t + 7000).toUTCString() });
    const page = await client.history(dev1, QUERY);
    expect(clock.sleeps).toEqual([7000]);
    expect(page.rows.length).toBe(60);
    await client.close();
  });

  test('an absurd Retry-After is capped at the documented maximum and logged as capped', async () => {
    const clock = fakeClock();
    const w = warnings();
    const pause = new PlatformPause({ redis, prefix: pausePrefix(), now: clock.now, sleep: clock.sleep, log: w.log });
    const client = makeClient({ throttle: pause });
    sim.faults.throttleNext(1, { retryAfter: '31536000' });
    const page = await client.history(dev1, QUERY);
    expect(MAX_PLATFORM_PAUSE_MS).toBe(300_000);
    expect(clock.sleeps).toEqual([300_000]);
    expect(page.rows.length).toBe(60);
    expect(w.lines).toHaveLength(1);
    expect(w.lines[0]!.obj).toMatchObject({
      endpoint: 'datapoints',
      status: 429,
      retryAfter: '31536000',
      pauseMs: 300_000,
      capped: true,
      maxMs: 300_000,
    });
    expect(w.lines[0]!.msg).toContain('longer than 300 s');
    await client.close();
  });

  test('a pause is logged once when it begins; throttled answers within it only move its end', async () => {
    const clock = fakeClock();
    const w = warnings();
    const pause = new PlatformPause({ redis, prefix: pausePrefix(), now: clock.now, sleep: clock.sleep, log: w.log });
    const first = await pause.throttled({ endpoint: 'datapoints', status: 429, retryAfter: '2' });
    const longer = await pause.throttled({ endpoint: 'datapoints', status: 429, retryAfter: '4' });
    const shorter = await pause.throttled({ endpoint: 'currentDatapoints', status: 503, retryAfter: '1' });
    expect([first.effect, longer.effect, shorter.effect]).toEqual(['began', 'extended', 'within']);
    expect(w.lines).toHaveLength(1);
    expect(w.lines[0]!.msg).toContain('pause for 2 s');
    expect(await pause.pausedUntil()).toBe(clock.t + 4000);
    await pause.wait();
    expect(clock.sleeps).toEqual([4000]);
    expect(await pause.pausedUntil()).toBeUndefined();
    // the pause ended: the next throttled answer begins (and logs) a new one
    expect((await pause.throttled({ endpoint: 'datapoints', status: 429, retryAfter: '1' })).effect).toBe('began');
    expect(w.lines).toHaveLength(2);
  });

  test('an unreadable Retry-After pauses nothing: the answer is retried with the backoff', async () => {
    const clock = fakeClock();
    const pause = new PlatformPause({ redis, prefix: pausePrefix(), now: clock.now, sleep: clock.sleep });
    const delays: number[] = [];
    const client = makeClient({ throttle: pause, onRetry: (r) => delays.push(r.delayMs) });
    sim.faults.throttleNext(1, { retryAfter: 'soon' });
    const page = await client.history(dev1, QUERY);
    expect(clock.sleeps).toEqual([]);
    expect(delays).toHaveLength(1);
    expect(delays[0]).toBeLessThanOrEqual(2);
    expect(await redis.get(platformPauseKey(pausePrefix()))).toBeNull();
    expect(page.rows.length).toBe(60);
    await client.close();
  });
});
