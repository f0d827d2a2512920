import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { PushRegistration } from '../../src/devices/push-registration.js';
import { ExpeedClient } from '../../src/platform/client.js';
import { createTokenEndpoint } from '../../src/platform/token/endpoint.js';
import { TokenBudget } from '../../src/platform/token/budget.js';
import { PLATFORM_KEY, SECRET_KEY, startStack, TZ, type Stack } from './push-stack.js';

const T0 = Date.UTC(2026, 10, 20);
let s: Stack;
let client: ExpeedClient;
let tokens: TokenBudget;

beforeAll(async () => {
  s = await startStack({
    sim: { devices: [{ id: 'real-1', key: 'key-r1', cadenceSec: 60 }], from: T0, to: T0 + 3_600_000 },
  });
  tokens = new TokenBudget({
    redis: s.redis,
    prefix: s.prefix,
    fetchToken: createTokenEndpoint({ baseUrl: s.sim!.url, platformKey: PLATFORM_KEY, secretKey: SECRET_KEY }),
    timezone: TZ,
  });
  client = new ExpeedClient({ baseUrl: s.sim!.url, tokens, timezone: TZ });
});

afterAll(async () => {
  await client?.close();
  await tokens?.close();
  await s?.close();
});

const statusCalls = () => s.sim!.stats.requests.device_status ?? 0;
const push = (body: Record<string, unknown>) =>
  fetch(s.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

/** Another process's view: a fresh instance sharing Redis (its in-memory caches empty). */
function registration(options: Partial<ConstructorParameters<typeof PushRegistration>[0]> = {}) {
  return new PushRegistration({
    registry: s.registry,
    platform: client,
    redis: s.redis,
    prefix: s.prefix,
    logger: s.logger,
    ...options,
  });
}

describe('pushes cannot invent devices', () => {
  test('invented ids are stored but never registered, one platform call each; a real device with its key joins', async () => {
    const before = statusCalls();
    const ghosts = ['ghost-1', 'ghost-2', 'ghost-3', 'ghost-4', 'ghost-5'];
    for (const id of ghosts) {
      for (let i = 0; i < 3; i++) {
        const row = { timestamp: `2026-11-20T08-00-0${i}-000`, temp: i };
        expect((await push({ msg_type: 2, device_id: id, device_key: `made-up-${i}`, data: [row] })).status).toBe(200);
      }
    }
    expect((await s.sim!.pushStatus('real-1', 0)).status).toBe(200);
    await s.until(
      'real device registered',
      () => s.registry.get('real-1'),
      (d) => d !== undefined,
    );
    // data is never lost: every row pushed for an unverified device landed
    await s.until(
      'ghost data points',
      () => s.rows(`SELECT * FROM device_data WHERE device_id =~ /^ghost-/`),
      (r) => r.length === 15,
    );
    expect((await s.registry.list()).map((d) => d.id)).toEqual(['real-1']);
    expect(await s.registry.get('real-1')).toMatchObject({ key: 'key-r1', origin: 'push' });
    // one call per invented id (the negative answer is cached) plus one for the real device
    expect(statusCalls() - before).toBe(ghosts.length + 1);

    // another process sees the cached negative answer: no call
    const other = registration();
    for (const id of ghosts) expect(await other.addIfMissing({ id, key: 'again' }, 'push')).toBe(false);
    expect(statusCalls() - before).toBe(ghosts.length + 1);
  });

  test('after the negative answer expires, one more call per id; still not registered', async () => {
    const short = registration({ negativeTtlMs: 300 });
    const before = statusCalls();
    expect(await short.addIfMissing({ id: 'ghost-x', key: 'k' }, 'push')).toBe(false);
    expect(await short.addIfMissing({ id: 'ghost-x', key: 'k' }, 'push')).toBe(false);
    expect(statusCalls() - before).toBe(1);
    await s.until(
      'negative answer expired',
      () => s.redis.exists(`${s.prefix}:devices:probe:ghost-x`),
      (n) => n === 0,
      5000,
    );
    expect(await short.addIfMissing({ id: 'ghost-x', key: 'k' }, 'push')).toBe(false);
    expect(statusCalls() - before).toBe(2);
    expect(await s.registry.get('ghost-x')).toBeUndefined();
  });

  test('a flood of new ids is verified at most maxPerMinute times; ids left over are not blocked', async () => {
    const minute = Date.UTC(2030, 0, 1, 0, 0);
    const limited = registration({ maxPerMinute: 3, now: () => minute });
    const before = statusCalls();
    for (let i = 0; i < 20; i++) expect(await limited.addIfMissing({ id: `flood-${i}`, key: 'k' }, 'push')).toBe(false);
    expect(statusCalls() - before).toBe(3);
    // an id that did not get a verification this minute is tried in a later one
    const later = registration({ maxPerMinute: 3, now: () => minute + 60_000 });
    expect(await later.addIfMissing({ id: 'flood-19', key: 'k' }, 'push')).toBe(false);
    expect(statusCalls() - before).toBe(4);
  });

  test('a verification that fails for a reason a retry can fix is not cached for long', async () => {
    const failing = registration({
      platform: { deviceStatus: async () => Promise.reject(Object.assign(new Error('HTTP 502'), { retryable: true })) },
      retryAfterMs: 200,
    });
    expect(await failing.addIfMissing({ id: 'real-2', key: 'k2' }, 'push')).toBe(false);
    const ttl = await s.redis.pttl(`${s.prefix}:devices:probe:real-2`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(200);
  });
});

describe('per-device metric series only for registered devices', () => {
  let m: Stack;

  beforeAll(async () => {
    // the app meters its writer as the service does, labels from the registry
    m = await startStack({
      sim: { devices: [{ id: 'reg-1', key: 'key-reg1', cadenceSec: 60 }], from: T0, to: T0 + 3_600_000 },
    });
  });

  afterAll(async () => {
    await m?.close();
  });

  test('2,000 pushes with invented ids keep /metrics small; the registered device keeps its own series', async () => {
    await m.registry.upsert({ id: 'reg-1', key: 'key-reg1' }, 'cli');
    await m.app.labels.refresh();
    const rows = m.sim!.rows('reg-1', T0, T0 + 10 * 60_000);
    expect((await m.sim!.pushData('reg-1', rows)).status).toBe(200);
    const send = (i: number) =>
      fetch(m.url, {
        method: 'POST',
        body: JSON.stringify({
          msg_type: 2,
          device_id: `inv-${i}`,
          device_key: `k-${i}`,
          data: [{ timestamp: '2026-11-20T09-00-00-000', temp: i }],
        }),
      });
    for (let i = 0; i < 2000; i += 50) {
      const answers = await Promise.all(Array.from({ length: 50 }, (_, j) => send(i + j)));
      expect(answers.every((a) => a.status === 200)).toBe(true);
    }
    await m.until(
      '2,000 invented devices written',
      () => m.rows(`SELECT count(temp) FROM device_data WHERE device_id =~ /^inv-/`),
      (r) => r[0]?.count === 2000,
      120_000,
    );
    await m.app.labels.refresh();
    const text = await m.app.metrics.registry.metrics();
    const series = text.split('\n').filter((l) => l.startsWith('expeed_last_data_timestamp_seconds{'));
    expect(series.sort()).toEqual([
      `expeed_last_data_timestamp_seconds{device_id="_unregistered"} ${Date.UTC(2026, 10, 20, 1) / 1000}`,
      `expeed_last_data_timestamp_seconds{device_id="reg-1"} ${rows.at(-1)!.time / 1000}`,
    ]);
    // 2,000 labelled series would be ~130 KB on their own
    expect(Buffer.byteLength(text)).toBeLessThan(16 * 1024);
  }, 180_000);
});
