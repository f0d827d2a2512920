import { afterAll, describe, expect, test } from 'vitest';
import { Redis } from 'ioredis';
import { startSimulator } from '../../src/simulator/index.js';
import { createTokenEndpoint } from '../../src/platform/token/endpoint.js';
import { TokenBudget } from '../../src/platform/token/budget.js';
import { createApp } from '../../src/app/app.js';
import { DEFAULT_STATUS_POLL, StatusPoller, type StatusPollResult } from '../../src/pull/status-poll.js';
import {
  createTestDatabase,
  deleteRedisPrefix,
  INFLUX_URL,
  REDIS_URL,
  testPrefix,
  until,
} from '../helpers/services.js';
import { PLATFORM_KEY, SECRET_KEY, scrubber, silentLogger, testConfig } from '../fixtures/pull-env.js';

/**
 * The token circuit breaker: a platform that answers code 1 to every device call, even right
 * after a refresh, must not drain the 200 daily token calls. Measured before: 20 devices polled
 * every 5 s drained 190 calls in 40 s.
 */

const MIN = 60_000;
const HOUR = 60 * MIN;
const T0 = Date.UTC(2026, 2, 2, 4); // 12:00 Shanghai
const DEVICE_ENDPOINTS = ['device_status', 'history', 'current', 'setting'] as const;

const cleanups: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('token cool-down', () => {
  test('20 devices, status polls every 5 s and nightly syncs, every device call code 1: 3 token calls in an hour, jobs delayed, no device marked', async () => {
    let now = T0;
    const clock = () => now;
    const prefix = testPrefix('cooldown');
    const sim = await startSimulator({
      platformKey: PLATFORM_KEY,
      secretKey: SECRET_KEY,
      devices: 20,
      from: T0 - 2 * HOUR,
      to: T0,
      now: clock,
      seed: 5,
    });
    cleanups.push(() => sim.close());
    const db = await createTestDatabase('cooldown');
    cleanups.push(() => db.drop().catch(() => undefined));
    cleanups.push(() => deleteRedisPrefix(prefix));
    const config = testConfig({
      simUrl: sim.url,
      prefix,
      db: db.name,
      influxUrl: INFLUX_URL,
      env: { EXPEED_PAGE_LIMIT: '1000' },
    });
    const stack = createApp(config, { logger: silentLogger(), scrubber: scrubber(), clock });
    cleanups.push(() => stack.close());
    for (const d of sim.devices) await stack.registry.upsert({ id: d.id, key: d.key }, 'cli');
    for (const ep of DEVICE_ENDPOINTS) sim.faults.codeStorm(1, 1e9, ep);

    // the nightly sync fires: its backfill jobs are delayed until the cool-down ends, not failed
    for (const d of sim.devices)
      await stack.backfills.enqueue({ deviceId: d.id, from: T0 - 2 * HOUR, to: T0, reason: 'nightly' });
    stack.startBackfillWorker();
    await until(
      'every nightly job delayed',
      async () => (await stack.backfillQueue.getJobCounts('delayed')).delayed === 20,
      {
        timeoutMs: 20_000,
        detail: () => `token calls ${sim.stats.tokenCalls}`,
      },
    );
    expect((await stack.backfillQueue.getJobCounts('failed')).failed).toBe(0);
    const delayed = await stack.backfillQueue.getJobs(['delayed']);
    expect(delayed.every((j) => j.attemptsMade === 0)).toBe(true);
    expect(sim.stats.tokenCalls).toBe(1);
    const first = await stack.tokens.usage();
    expect(first).toMatchObject({ cooldownKind: 'token', cooldownUntil: T0 + 15 * MIN });
    expect(first.cooldownReason).toContain('never worked');

    // an hour of injected time: the status poll every 5 s, a nightly-style history call per device every 10 min
    const poller = new StatusPoller({
      platform: stack.platform,
      writer: stack.writer,
      registry: stack.registry,
      now: clock,
    });
    const polls: StatusPollResult[] = [];
    const nightly: unknown[] = [];
    for (let t = 0; t <= HOUR; t += 5000) {
      now = T0 + t;
      polls.push(await poller.poll({}));
      if (t % (10 * MIN) === 0) {
        for (const d of sim.devices)
          nightly.push(
            await stack.platform
              .history({ id: d.id, key: d.key }, { start: T0 - HOUR, end: T0, first: 1, limit: 1000 })
              .catch((e: unknown) => e),
          );
      }
    }
    // pauses of 15, 30 and 60 min: probes at 0, 15 and 45 min, the next one not before 1 h 45
    expect(sim.stats.tokenCalls).toBe(3);
    // each probe is one status poll whose lanes (DEFAULT_STATUS_POLL.concurrency) share the one
    // fetched token: at most that many device calls before the pause is seen, and no token call more
    expect(sim.stats.requests.device_status).toBeGreaterThanOrEqual(2);
    expect(sim.stats.requests.device_status).toBeLessThanOrEqual(2 * DEFAULT_STATUS_POLL.concurrency);
    const usage = await stack.tokens.usage();
    expect(usage).toMatchObject({ calls: 3, cooldownKind: 'token', cooldownUntil: T0 + 105 * MIN });
    expect(polls.every((p) => p.polled === 0 && p.skipped?.devices === 20 && p.refused.length === 0)).toBe(true);
    expect(polls[0].skipped?.until).toBe(T0 + 15 * MIN);
    expect(nightly).toHaveLength(140);
    for (const e of nightly) {
      expect(e).toMatchObject({ name: 'TokenCooldownError', endpoint: 'token', retryable: true });
      expect((e as { retryAt: number }).retryAt).toBeGreaterThan(T0);
    }
    expect((await stack.registry.list()).filter((d) => d.failure)).toEqual([]);

    // a token that works ends the streak: the next rejection pauses 15 min again, not 2 h
    sim.faults.reset();
    now = T0 + 106 * MIN;
    expect(await poller.poll({})).toMatchObject({ polled: 20, refused: [] });
    expect(sim.stats.tokenCalls).toBe(4);
    expect((await stack.tokens.usage()).cooldownUntil).toBeUndefined();
    for (const ep of DEVICE_ENDPOINTS) sim.faults.codeStorm(1, 1e9, ep);
    now = T0 + 107 * MIN;
    // the working token is rejected: expiry, one refresh; the fresh one is rejected too: pause
    expect((await poller.poll({})).skipped).toMatchObject({ devices: 20, until: T0 + 122 * MIN });
    expect(sim.stats.tokenCalls).toBe(5);
  }, 120_000);

  test('the pause doubles up to its maximum while fresh tokens are rejected, is shared by every process, and a token that works resets it', async () => {
    let now = T0;
    const clock = () => now;
    const prefix = testPrefix('cooldown');
    cleanups.push(() => deleteRedisPrefix(prefix));
    const sim = await startSimulator({
      platformKey: PLATFORM_KEY,
      secretKey: SECRET_KEY,
      devices: 1,
      from: T0 - HOUR,
      to: T0,
      now: clock,
    });
    cleanups.push(() => sim.close());
    const processes = [0, 1].map(() => {
      const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 2 });
      cleanups.push(async () => redis.disconnect());
      const fetchToken = createTokenEndpoint({ baseUrl: sim.url, platformKey: PLATFORM_KEY, secretKey: SECRET_KEY });
      return new TokenBudget({ redis, prefix, fetchToken, now: clock, cooldownMs: 10 * MIN, maxCooldownMs: 30 * MIN });
    });
    const [a, b] = processes;
    const pauses: number[] = [];
    for (let i = 0; i < 4; i++) {
      const token = await a.get();
      // both processes had calls in flight with it: one pause, the same for both, counted once
      const errors = await Promise.all([
        a.rejected(token, 'token过期').catch((e: unknown) => e),
        b.rejected(token).catch((e: unknown) => e),
      ]);
      const until = (errors[0] as { retryAt: number }).retryAt;
      for (const e of errors) expect(e).toMatchObject({ name: 'TokenCooldownError', retryable: true, retryAt: until });
      pauses.push((until - now) / MIN);
      await expect(b.get()).rejects.toMatchObject({ name: 'TokenCooldownError', retryAt: until });
      now = until;
    }
    expect(pauses).toEqual([10, 20, 30, 30]);
    expect(sim.stats.tokenCalls).toBe(4);
    // a token that works ends the streak
    const working = await b.get();
    await b.accepted(working);
    await expect(a.rejected(working)).resolves.toBeUndefined(); // it had worked: expired, refresh allowed
    const fresh = await a.get();
    await expect(a.rejected(fresh)).rejects.toMatchObject({ name: 'TokenCooldownError', retryAt: now + 10 * MIN });
    expect(sim.stats.tokenCalls).toBe(6);
  });
});
