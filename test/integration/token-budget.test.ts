import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { Redis } from 'ioredis';
import { startSimulator, type Simulator } from '../../src/simulator/index.js';
import { ExpeedClient } from '../../src/platform/client.js';
import { createTokenEndpoint, type TokenEndpoint } from '../../src/platform/token/endpoint.js';
import { TokenBudget } from '../../src/platform/token/budget.js';
import { type TokenBudgetOptions } from '../../src/platform/token/budget-options.js';
import { credentialsFingerprint } from '../../src/platform/token/budget-config.js';
import { CredentialsRejectedError, PlatformError, PlatformUnavailableError } from '../../src/platform/errors.js';
import { CredentialsCooldownError, TokenBudgetExhaustedError } from '../../src/platform/token/errors.js';
import { REDACTED, SecretScrubber } from '../../src/base/secrets.js';
import { REDIS_URL, deleteRedisPrefix, testPrefix, until } from '../helpers/services.js';

const PLATFORM_KEY = 'pk-budget-test';
const SECRET_KEY = 'sk-budget-test-secret';
const T0 = Date.UTC(2024, 4, 1, 4); // 12:00 in Shanghai
const HOUR = 3_600_000;

/** One clock shared by the simulator and every budget of a test. */
function clock(start: number) {
  let t = start;
  return { now: () => t, set: (v: number) => (t = v), advance: (ms: number) => (t += ms) };
}

const redisConnections: Redis[] = [];
const prefixes: string[] = [];
const sims: Simulator[] = [];

function connection(): Redis {
  const r = new Redis(REDIS_URL, { maxRetriesPerRequest: 2 });
  redisConnections.push(r);
  return r;
}

async function simulator(
  now: () => number,
  extra: Partial<Parameters<typeof startSimulator>[0]> = {},
): Promise<Simulator> {
  const sim = await startSimulator({
    platformKey: PLATFORM_KEY,
    secretKey: SECRET_KEY,
    devices: 2,
    from: T0 - 2 * HOUR,
    to: T0,
    now,
    ...extra,
  });
  sims.push(sim);
  return sim;
}

function budget(
  sim: Simulator,
  prefix: string,
  now: () => number,
  extra: Partial<TokenBudgetOptions> = {},
): TokenBudget {
  return new TokenBudget({
    redis: connection(),
    prefix,
    fetchToken: createTokenEndpoint({
      baseUrl: sim.url,
      platformKey: PLATFORM_KEY,
      secretKey: SECRET_KEY,
      timeoutMs: 5000,
    }),
    now,
    pollMs: 20,
    ...extra,
  });
}

function newPrefix(): string {
  const p = testPrefix('budget');
  prefixes.push(p);
  return p;
}

afterEach(async () => {
  for (const s of sims.splice(0)) await s.close();
  for (const r of redisConnections.splice(0)) r.disconnect();
});

afterAll(async () => {
  for (const p of prefixes) await deleteRedisPrefix(p);
});

let probe: Redis;
beforeAll(() => {
  probe = new Redis(REDIS_URL, { maxRetriesPerRequest: 2 });
});
afterAll(() => probe.disconnect());

describe('TokenBudget', () => {
  test('8 processes with separate Redis connections racing on a cold cache make exactly 1 token call', async () => {
    const c = clock(T0);
    const sim = await simulator(c.now);
    const prefix = newPrefix();
    const budgets = Array.from({ length: 8 }, () => budget(sim, prefix, c.now));
    const tokens = await Promise.all(budgets.map((b) => b.get()));
    expect(sim.stats.tokenCalls).toBe(1);
    expect(new Set(tokens).size).toBe(1);
    expect(tokens[0]).toMatch(/^[0-9a-f]{32}$/);
    const usage = await budgets[3].usage();
    expect(usage).toMatchObject({
      day: '2024-05-01',
      calls: 1,
      limit: 200,
      reserve: 10,
      resetsAt: Date.UTC(2024, 4, 1, 16),
      refreshing: false,
    });
    expect(usage.tokenExpiresAt).toBe(T0 + 7200 * 1000);
    expect(JSON.stringify(usage)).not.toContain(tokens[0]);
  });

  test('200 concurrent device calls from 4 processes after the platform revokes the token cause exactly 1 refresh', async () => {
    const c = clock(T0);
    const sim = await simulator(c.now);
    const prefix = newPrefix();
    const clients = Array.from(
      { length: 4 },
      () => new ExpeedClient({ baseUrl: sim.url, tokens: budget(sim, prefix, c.now), backoffMs: 1 }),
    );
    const first = await clients[0].deviceStatus({ id: 'dev-0001', key: 'key-0001' });
    expect(first).toEqual({ online: true, raw: 1 });
    expect(sim.stats.tokenCalls).toBe(1);
    sim.faults.revokeTokens();
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        clients[i % 4].deviceStatus({ id: i % 2 ? 'dev-0001' : 'dev-0002', key: i % 2 ? 'key-0001' : 'key-0002' }),
      ),
    );
    expect(results.every((r) => r.online === true && r.raw === 1)).toBe(true);
    expect(sim.stats.tokenCalls).toBe(2);
    expect(sim.stats.requests.device_status).toBeGreaterThanOrEqual(201);
    expect(sim.stats.requests.device_status).toBeLessThanOrEqual(401);
    expect(sim.stats.violations).toEqual([]);
  });

  test('a restart keeps the day count', async () => {
    const c = clock(T0);
    const sim = await simulator(c.now);
    const prefix = newPrefix();
    const a = budget(sim, prefix, c.now);
    const t1 = await a.get();
    await a.invalidate(t1);
    await a.get();
    await a.close();
    expect((await a.usage()).calls).toBe(2);
    // a new process: new connection, new object, same Redis
    const b = budget(sim, prefix, c.now);
    expect((await b.usage()).calls).toBe(2);
    const t3 = await b.get();
    expect((await b.usage()).calls).toBe(2); // the cached token survived the restart too
    await b.invalidate(t3);
    await b.get();
    expect((await b.usage()).calls).toBe(3);
    expect(sim.stats.tokenCalls).toBe(3);
  });

  test('the count resets at midnight Asia/Shanghai (16:00 UTC), not at midnight UTC', async () => {
    const c = clock(Date.UTC(2024, 4, 1, 15, 58));
    const sim = await simulator(c.now);
    const prefix = newPrefix();
    const b = budget(sim, prefix, c.now, { dailyLimit: 3, reserve: 0 });
    for (let i = 0; i < 3; i++) await b.invalidate(await b.get());
    const err = await b.get().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TokenBudgetExhaustedError);
    const e = err as TokenBudgetExhaustedError;
    expect(e.resetsAt).toBe(Date.UTC(2024, 4, 1, 16));
    expect(e.retryAt).toBe(Date.UTC(2024, 4, 1, 16));
    expect(e.message).toContain('3 of 3 token calls made today');
    expect(e.message).toContain('resets at 2024-05-02 00:00:00 Asia/Shanghai');
    expect(sim.stats.tokenCalls).toBe(3);

    c.set(Date.UTC(2024, 4, 1, 15, 59, 59, 999));
    await expect(b.get()).rejects.toBeInstanceOf(TokenBudgetExhaustedError);
    c.set(Date.UTC(2024, 4, 1, 16)); // still 1 May in UTC, already 2 May in Shanghai
    const token = await b.get();
    expect(token).toMatch(/^[0-9a-f]{32}$/);
    expect(await b.usage()).toMatchObject({ day: '2024-05-02', calls: 1, resetsAt: Date.UTC(2024, 4, 2, 16) });
    expect(sim.stats.tokenCallsByDay).toEqual({ '2024-05-01': 3, '2024-05-02': 1 });
  });

  test('scheduled work stops before the reserve; operator calls may use it; then everything stops with the reset time', async () => {
    const c = clock(T0);
    const sim = await simulator(c.now);
    const prefix = newPrefix();
    const b = budget(sim, prefix, c.now, { dailyLimit: 5, reserve: 2 });
    for (let i = 0; i < 3; i++) await b.invalidate(await b.get());
    const scheduled = await b.get().catch((e: unknown) => e);
    expect(scheduled).toBeInstanceOf(TokenBudgetExhaustedError);
    expect((scheduled as Error).message).toContain('the last 2 are kept for commands run by hand');
    expect((scheduled as Error).message).toContain('resets at 2024-05-02 00:00:00 Asia/Shanghai');
    expect(sim.stats.tokenCalls).toBe(3);
    await b.invalidate(await b.get({ useReserve: true }));
    await b.invalidate(await b.get({ useReserve: true }));
    const manual = await b.get({ useReserve: true }).catch((e: unknown) => e);
    expect(manual).toBeInstanceOf(TokenBudgetExhaustedError);
    expect((manual as Error).message).toBe(
      'daily token budget is spent: 5 of 5 token calls made today; the count resets at 2024-05-02 00:00:00 Asia/Shanghai',
    );
    expect(sim.stats.tokenCalls).toBe(5);
    expect((await b.usage()).calls).toBe(5);
  });

  test('8 racing processes can never exceed the limit', async () => {
    const c = clock(T0);
    const sim = await simulator(c.now);
    const prefix = newPrefix();
    const budgets = Array.from({ length: 8 }, () => budget(sim, prefix, c.now, { dailyLimit: 6, reserve: 0 }));
    const outcomes = await Promise.all(
      budgets.map(async (b) => {
        let exhausted = 0;
        for (let i = 0; i < 6; i++) {
          try {
            await b.invalidate(await b.get());
          } catch (err) {
            if (!(err instanceof TokenBudgetExhaustedError)) throw err;
            exhausted++;
          }
        }
        return exhausted;
      }),
    );
    expect(sim.stats.tokenCalls).toBe(6);
    expect(outcomes.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    expect((await budgets[0].usage()).calls).toBe(6);
  });

  test('a token is refreshed shortly before it expires, not earlier', async () => {
    const c = clock(T0);
    const sim = await simulator(c.now);
    const b = budget(sim, newPrefix(), c.now, { refreshBeforeMs: 5 * 60_000 });
    const t1 = await b.get();
    c.set(T0 + 7200_000 - 6 * 60_000);
    expect(await b.get()).toBe(t1);
    expect(sim.stats.tokenCalls).toBe(1);
    c.set(T0 + 7200_000 - 4 * 60_000);
    const t2 = await b.get();
    expect(t2).not.toBe(t1);
    expect(sim.stats.tokenCalls).toBe(2);
    expect((await b.usage()).tokenExpiresAt).toBe(T0 + 7200_000 - 4 * 60_000 + 7200_000);
  });

  test('a failed refresh before expiry keeps using the still-valid token', async () => {
    const c = clock(T0);
    const sim = await simulator(c.now);
    const b = budget(sim, newPrefix(), c.now);
    const t1 = await b.get();
    c.set(T0 + 7200_000 - 60_000);
    sim.faults.http5xxRate = 1;
    expect(await b.get()).toBe(t1);
    expect(sim.stats.tokenCalls).toBe(2);
    c.set(T0 + 7200_000);
    await expect(b.get()).rejects.toBeInstanceOf(PlatformUnavailableError);
    expect(sim.stats.tokenCalls).toBe(3); // one attempt per get(): no retry loop behind the budget's back
  });

  test('rejected credentials: one call, then a cool-down in Redis that other processes respect', async () => {
    const c = clock(T0);
    const sim = await simulator(c.now);
    const prefix = newPrefix();
    const wrong = (): TokenEndpoint =>
      createTokenEndpoint({ baseUrl: sim.url, platformKey: PLATFORM_KEY, secretKey: 'wrong-secret' });
    const id = credentialsFingerprint(PLATFORM_KEY, 'wrong-secret');
    const a = budget(sim, prefix, c.now, { fetchToken: wrong(), credentialsId: id, cooldownMs: 10 * 60_000 });
    const err = await a.get().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CredentialsRejectedError);
    expect((err as CredentialsRejectedError).vendorMessage).toBe('验证失败');
    expect((err as CredentialsRejectedError).retryable).toBe(false);
    expect((err as Error).message).not.toContain('wrong-secret');
    // a crash-looping process: new object, new connection, same credentials
    const restarted = budget(sim, prefix, c.now, { fetchToken: wrong(), credentialsId: id });
    const again = await restarted.get().catch((e: unknown) => e);
    expect(again).toBeInstanceOf(CredentialsCooldownError);
    expect((again as CredentialsCooldownError).until).toBe(T0 + 10 * 60_000);
    expect((again as Error).message).toContain('paused until 2024-05-01 12:10:00 Asia/Shanghai');
    expect(sim.stats.tokenCalls).toBe(1);
    expect((await restarted.usage()).cooldownUntil).toBe(T0 + 10 * 60_000);
    // fixed credentials are tried at once
    const fixed = budget(sim, prefix, c.now, { credentialsId: credentialsFingerprint(PLATFORM_KEY, SECRET_KEY) });
    expect(await fixed.get()).toMatch(/^[0-9a-f]{32}$/);
    expect(sim.stats.tokenCalls).toBe(2);
    // the cool-down ends by itself, and an operator can lift it
    c.advance(10 * 60_000);
    expect((await restarted.usage()).cooldownUntil).toBeUndefined();
    expect(await restarted.clearCooldown()).toBe(true);
  });

  test('a process whose lock holder died takes over when the lock expires', async () => {
    const c = clock(T0);
    const sim = await simulator(c.now);
    const prefix = newPrefix();
    await probe.set(`${prefix}:token:lock`, 'a-dead-process', 'PX', 300);
    const b = budget(sim, prefix, c.now);
    expect(await b.get()).toMatch(/^[0-9a-f]{32}$/);
    expect(sim.stats.tokenCalls).toBe(1);
    expect(await probe.exists(`${prefix}:token:lock`)).toBe(0);
  });

  test("waiting processes get the refresher's failure instead of each spending a call", async () => {
    const c = clock(T0);
    const sim = await simulator(c.now);
    const prefix = newPrefix();
    let calls = 0;
    // Redis commands each budget sent: a waiter polls the lock and the cache again and again
    const sent = [0, 0, 0, 0];
    const counted = (i: number): Redis => {
      const r = connection();
      const send = r.sendCommand.bind(r);
      r.sendCommand = ((cmd: Parameters<Redis['sendCommand']>[0]) => (sent[i]++, send(cmd))) as Redis['sendCommand'];
      return r;
    };
    // the vendor side, failing once the three others wait for it: each has polled a few times since
    const failing: TokenEndpoint = async () => {
      calls++;
      const at = [...sent];
      await until(
        'three budgets waiting for the refresher',
        async () => sent.filter((n, i) => n - at[i] >= 5).length >= 3,
        { timeoutMs: 10_000, intervalMs: 10 },
      );
      throw new PlatformUnavailableError('token', 'HTTP 503');
    };
    const budgets = Array.from({ length: 4 }, (_, i) =>
      budget(sim, prefix, c.now, { fetchToken: failing, redis: counted(i) }),
    );
    const results = await Promise.allSettled(budgets.map((b) => b.get()));
    expect(calls).toBe(1);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected', 'rejected']);
    const reasons = results.map((r) => (r as PromiseRejectedResult).reason as PlatformError);
    expect(reasons.every((e) => e instanceof PlatformError && e.retryable && e.message.includes('HTTP 503'))).toBe(
      true,
    );
    expect((await budgets[0].usage()).calls).toBe(1);
  });

  test('every fetched token is registered with the scrubber, also in processes that only read it', async () => {
    const c = clock(T0);
    const sim = await simulator(c.now);
    const prefix = newPrefix();
    const s1 = new SecretScrubber();
    const s2 = new SecretScrubber();
    const token = await budget(sim, prefix, c.now, { scrubber: s1 }).get();
    expect(await budget(sim, prefix, c.now, { scrubber: s2 }).get()).toBe(token);
    expect(s1.scrub(`token=${token}`)).toBe(`token=${REDACTED}`);
    expect(s2.scrub(`token=${token}`)).toBe(`token=${REDACTED}`);
  });

  test('without credentials get() fails clearly and spends no call', async () => {
    const prefix = newPrefix();
    const b = new TokenBudget({ redis: connection(), prefix });
    await expect(b.get()).rejects.toThrow('EXPEED_PLATFORM_KEY and EXPEED_SECRET_KEY are not set');
    expect((await b.usage()).calls).toBe(0);
  });

  test('refuses a reserve that leaves nothing for scheduled work', () => {
    expect(
      () =>
        new TokenBudget({
          redis: probe,
          prefix: 'x',
          fetchToken: async () => ({ accessToken: 'x', expiresIn: 1 }),
          dailyLimit: 5,
          reserve: 5,
        }),
    ).toThrow('token reserve must be a whole number from 0 to dailyLimit - 1 (4), got 5');
  });
});
