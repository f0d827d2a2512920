import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { Redis } from 'ioredis';
import { startSimulator, type Simulator } from '../../src/simulator/index.js';
import { ExpeedClient, type PlatformClientOptions } from '../../src/platform/client.js';
import { createTokenEndpoint } from '../../src/platform/token/endpoint.js';
import { walkAll } from '../helpers/walk.js';
import { TokenBudget } from '../../src/platform/token/budget.js';
import {
  DeviceKeyError,
  DeviceNotFoundError,
  DeviceOfflineError,
  InvalidParametersError,
  PlatformError,
  PlatformProtocolError,
  PlatformUnavailableError,
  UnknownResultCodeError,
} from '../../src/platform/errors.js';
import { TokenCooldownError } from '../../src/platform/token/errors.js';
import type { TokenSource } from '../../src/platform/api.js';
import { REDACTED, SecretScrubber } from '../../src/base/secrets.js';
import { REDIS_URL, deleteRedisPrefix, freePort, testPrefix } from '../helpers/services.js';

const PLATFORM_KEY = 'pk-client-test';
const SECRET_KEY = 'sk-client-test-secret';
const TO = Date.UTC(2024, 4, 1, 4); // 12:00 Shanghai
const FROM = TO - 6 * 3_600_000;
const SPECIAL = [
  { id: '温度计 一号', key: 'key-chinese' },
  { id: 'line/7 pump', key: 'key-slash' },
  { id: 'a%2Fb?c#d', key: 'key-reserved' },
];
const DEVICES = [{ id: 'dev-0001', key: 'key-0001' }, { id: 'dev-0002', key: 'key-0002', cadenceSec: 5 }, ...SPECIAL];
const dev1 = { id: 'dev-0001', key: 'key-0001' };

let sim: Simulator;
let redis: Redis;
let prefix: string;
let budget: TokenBudget;
let scrubber: SecretScrubber;
let client: ExpeedClient;

function makeClient(extra: Partial<PlatformClientOptions> = {}): ExpeedClient {
  return new ExpeedClient({
    baseUrl: sim.url,
    tokens: budget,
    backoffMs: 1,
    maxBackoffMs: 5,
    timeoutMs: 5000,
    scrubber,
    ...extra,
  });
}

/** A vendor that answers what the test says (for malformed answers the simulator never gives). */
function vendorAnswering(body: string, status = 200): typeof fetch {
  return async () => new Response(body, { status, headers: { 'content-type': 'application/json' } });
}

const fixedToken: TokenSource = { get: async () => 'fixed-token-value', invalidate: async () => undefined };

beforeAll(async () => {
  sim = await startSimulator({
    platformKey: PLATFORM_KEY,
    secretKey: SECRET_KEY,
    devices: DEVICES,
    from: FROM,
    to: TO,
    seed: 7,
  });
  redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 2 });
  prefix = testPrefix('client');
  scrubber = new SecretScrubber([PLATFORM_KEY, SECRET_KEY]);
  budget = new TokenBudget({
    redis,
    prefix,
    scrubber,
    fetchToken: createTokenEndpoint({ baseUrl: sim.url, platformKey: PLATFORM_KEY, secretKey: SECRET_KEY, scrubber }),
  });
  client = makeClient();
});

afterAll(async () => {
  await client.close();
  await budget.close();
  await sim.close();
  await deleteRedisPrefix(prefix);
  redis.disconnect();
});

beforeEach(() => sim.faults.reset());

describe('ExpeedClient against the simulator', () => {
  test.each(['502', 'reset'] as const)(
    'GET calls are retried with backoff when the platform answers %s',
    async (kind) => {
      const retries: number[] = [];
      const c = makeClient({ onRetry: (r) => retries.push(r.attempt), retries: 8 });
      sim.faults.deviceFailKind = kind;
      sim.faults.deviceFailRate = 0.4;
      try {
        for (let i = 0; i < 6; i++) {
          const page = await c.history(dev1, { start: FROM, end: FROM + 3_600_000, first: 1, limit: 100 });
          expect(page.rows).toEqual(sim.rows('dev-0001', FROM, FROM + 3_600_000));
        }
      } finally {
        await c.close();
      }
      expect(sim.stats.deviceFailures[kind]).toBeGreaterThan(0);
      // every failure was retried by the client itself (none reached the caller)
      expect(retries.length).toBe(sim.stats.deviceFailures[kind]);
    },
  );

  test('device status: 1 is online, 0 offline, raw code kept', async () => {
    expect(await client.deviceStatus(dev1)).toEqual({ online: true, raw: 1 });
    sim.setOnline('dev-0002', false);
    expect(await client.deviceStatus({ id: 'dev-0002', key: 'key-0002' })).toEqual({ online: false, raw: 0 });
    sim.setOnline('dev-0002', true);
  });

  test('current datapoints: the leading-space timestamp is read, values as sent', async () => {
    const all = sim.rows('dev-0001');
    const last = all[all.length - 1];
    const { row, unreadable } = await client.currentDatapoints(dev1, ['temp', 'humidity']);
    expect(unreadable).toEqual([]);
    const expected: Record<string, unknown> = {};
    for (const name of ['temp', 'humidity'])
      expected[name] = [...all].reverse().find((r) => name in r.values)?.values[name];
    expect(row?.values).toEqual(expected);
    expect(row?.time).toBeLessThanOrEqual(last.time);
    expect(row?.time).toBeGreaterThan(FROM);
  });

  test('one history page with limit 6000 holds exactly the rows of the range', async () => {
    const from = TO - 3_600_000;
    const page = await client.history(dev1, { start: from, end: TO, first: 1, limit: 6000 });
    const expected = sim.rows('dev-0001', from, TO);
    expect(expected.length).toBeGreaterThan(50);
    expect(page.rows).toEqual(expected);
    expect(page.cursor).toBeUndefined();
    expect(page.unreadable).toEqual([]);
    expect(sim.stats.largestLimit).toBe(6000);
  });

  test('the walker reads a range over many pages, boundary repeats dropped, over HTTP', async () => {
    const expected = sim.rows('dev-0002', FROM, TO);
    expect(expected.length).toBeGreaterThan(4000);
    const served = sim.stats.requests.history ?? 0;
    const up = await walkAll(client, { id: 'dev-0002', key: 'key-0002' }, { from: FROM, to: TO, limit: 1000 });
    expect(up.rows.filter((r) => r.time >= FROM && r.time < TO)).toEqual(expected);
    // reading "next": the cursor is followed, then one range request confirms the end
    expect(up.pages).toBe(Math.ceil(expected.length / 1000) + 1);
    expect((sim.stats.requests.history ?? 0) - served).toBe(up.pages);
    expect(up.end).toBe('complete');

    const repeating = await startSimulator({
      platformKey: PLATFORM_KEY,
      secretKey: SECRET_KEY,
      devices: DEVICES,
      from: FROM,
      to: TO,
      seed: 7,
      boundaryRepeat: true,
    });
    try {
      const p2 = testPrefix('client-repeat');
      const b2 = new TokenBudget({
        redis,
        prefix: p2,
        fetchToken: createTokenEndpoint({ baseUrl: repeating.url, platformKey: PLATFORM_KEY, secretKey: SECRET_KEY }),
      });
      const c2 = new ExpeedClient({ baseUrl: repeating.url, tokens: b2 });
      const walked = await walkAll(c2, { id: 'dev-0002', key: 'key-0002' }, { from: FROM, to: TO, limit: 1000 });
      expect(walked.rows.filter((r) => r.time >= FROM && r.time < TO)).toEqual(expected);
      // every page after the first is a range request from 1 ms before the newest row held: it
      // re-serves the boundary row (or two, when one sits 1 ms earlier)
      expect(repeating.stats.historyRowsServed).toBeGreaterThanOrEqual(expected.length + walked.pages - 1);
      expect(repeating.stats.historyRowsServed).toBeLessThanOrEqual(expected.length + 2 * (walked.pages - 1));
      expect(repeating.stats.violations).toEqual([]);
      await deleteRedisPrefix(p2);
    } finally {
      await repeating.close();
    }
  });

  test.each(SPECIAL)('device id %j is URL-encoded into the path', async ({ id, key }) => {
    expect(await client.deviceStatus({ id, key })).toEqual({ online: true, raw: 1 });
    const page = await client.history({ id, key }, { start: FROM, end: TO, first: 1, limit: 6000 });
    expect(page.rows).toEqual(sim.rows(id, FROM, TO));
    const { messageId } = await client.deviceSetting({ id, key }, { temp: 21 });
    expect(sim.stats.settings.find((s) => s.messageId === messageId)).toEqual({
      deviceId: id,
      messageId,
      settings: { temp: 21 },
    });
  });

  test('device setting returns the message id the platform issued', async () => {
    const { messageId } = await client.deviceSetting(dev1, { temp: 25, switch: 1 });
    expect(sim.stats.settings.at(-1)).toEqual({ deviceId: 'dev-0001', messageId, settings: { temp: 25, switch: 1 } });
  });

  test('result codes are read per endpoint, with endpoint, code and vendor message', async () => {
    const wrongKey = { id: 'dev-0001', key: 'not-the-key' };
    const cases: Array<[Promise<unknown>, new (...a: never[]) => PlatformError, string, number, string]> = [
      [
        client.deviceStatus({ id: 'no-such-device', key: 'k-none' }),
        DeviceNotFoundError,
        'device_status',
        2,
        '设备不存在',
      ],
      [client.deviceStatus(wrongKey), DeviceKeyError, 'device_status', 3, 'device_key不存在'],
      [client.currentDatapoints(wrongKey), DeviceKeyError, 'currentDatapoints', 3, 'device_key不存在'],
    ];
    for (const [promise, type, endpoint, code, vendorMessage] of cases) {
      const err = (await promise.catch((e: unknown) => e)) as PlatformError;
      expect(err).toBeInstanceOf(type);
      expect({
        endpoint: err.endpoint,
        code: err.code,
        vendorMessage: err.vendorMessage,
        retryable: err.retryable,
      }).toEqual({ endpoint, code, vendorMessage, retryable: false });
      expect(err.message).toContain(vendorMessage);
    }
    // code 3 also answers a wrong key on history and setting: the vendor's message tells them apart
    const historyKey = (await client.history(wrongKey, {}).catch((e: unknown) => e)) as PlatformError;
    expect(historyKey).toBeInstanceOf(DeviceKeyError);
    expect([historyKey.endpoint, historyKey.code, historyKey.vendorMessage]).toEqual([
      'datapoints',
      3,
      'device_key不存在',
    ]);
    expect(await client.deviceSetting(wrongKey, { a: 1 }).catch((e: unknown) => e)).toBeInstanceOf(DeviceKeyError);
    // code 3 on the setting endpoint: the device is offline (a later attempt can work)
    sim.setOnline('dev-0001', false);
    const offline = (await client.deviceSetting(dev1, { temp: 1 }).catch((e: unknown) => e)) as DeviceOfflineError;
    sim.setOnline('dev-0001', true);
    expect(offline).toBeInstanceOf(DeviceOfflineError);
    expect([offline.endpoint, offline.code, offline.vendorMessage, offline.retryable]).toEqual([
      'device_setting',
      3,
      '设备不在线',
      true,
    ]);
    sim.faults.codeStorm(4, 1, 'device_status');
    expect(await client.deviceStatus(dev1).catch((e: unknown) => e)).toMatchObject({
      kind: 'url',
      code: 4,
      retryable: false,
    });
    sim.faults.codeStorm(5, 1, 'setting');
    expect(await client.deviceSetting(dev1, { a: 1 }).catch((e: unknown) => e)).toMatchObject({
      kind: 'body',
      code: 5,
      endpoint: 'device_setting',
    });
    // an undocumented code is retried (3 times by default), then fails naming the code and the message
    sim.faults.codeStorm(42, 4, 'current');
    const before = sim.stats.requests.current ?? 0;
    const unknown = (await client.currentDatapoints(dev1).catch((e: unknown) => e)) as UnknownResultCodeError;
    expect(unknown).toBeInstanceOf(UnknownResultCodeError);
    expect(unknown.message).toContain('unknown result code 42 from the platform in 4 answers in a row');
    expect(unknown.message).toContain(`vendor says "${unknown.vendorMessage}"`);
    expect([unknown.code, unknown.attempts, unknown.retryable, unknown.unknownCode]).toEqual([42, 4, false, true]);
    expect(sim.stats.requests.current - before).toBe(4);
  });

  test('an undocumented result code answered twice, then success: the call succeeds after backoff', async () => {
    sim.faults.codeStorm(42, 2, 'device_status');
    const before = sim.stats.requests.device_status ?? 0;
    expect(await client.deviceStatus(dev1)).toEqual({ online: true, raw: 1 });
    expect(sim.stats.requests.device_status - before).toBe(3);
    // EXPEED_UNKNOWN_CODE_RETRIES=0: the first one fails
    sim.faults.codeStorm(42, 1, 'device_status');
    expect(
      await makeClient({ unknownCodeRetries: 0 })
        .deviceStatus(dev1)
        .catch((e: unknown) => e),
    ).toMatchObject({ code: 42, attempts: 1 });
  });

  test('code 1: the token is dropped, fetched again once and the call retried once', async () => {
    await client.deviceStatus(dev1);
    const before = sim.stats.tokenCalls;
    sim.faults.revokeTokens();
    expect(await client.deviceStatus(dev1)).toEqual({ online: true, raw: 1 });
    expect(sim.stats.tokenCalls).toBe(before + 1);
    // a fresh token rejected too: stop instead of spending more, and pause token calls for everyone
    sim.faults.codeStorm(1, 5, 'device_status');
    const err = (await client.deviceStatus(dev1).catch((e: unknown) => e)) as TokenCooldownError;
    expect(err).toBeInstanceOf(TokenCooldownError);
    expect([err.retryable, err.retryAt]).toEqual([true, err.until]);
    expect(err.message).toContain('rejected a freshly fetched access token');
    expect(sim.stats.tokenCalls).toBe(before + 2);
    expect(await client.deviceStatus(dev1).catch((e: unknown) => e)).toBeInstanceOf(TokenCooldownError);
    expect(sim.stats.tokenCalls).toBe(before + 2);
    expect(await budget.clearCooldown()).toBe(true);
    sim.faults.reset();
    expect(await client.deviceStatus(dev1)).toEqual({ online: true, raw: 1 }); // a working token for the next tests
  });

  test('HTTP 5xx is retried with backoff a bounded number of times, then a retryable error', async () => {
    const c = makeClient({ retries: 2 });
    sim.faults.http5xxRate = 1;
    const before = sim.stats.requests.device_status ?? 0;
    const err = (await c.deviceStatus(dev1).catch((e: unknown) => e)) as PlatformUnavailableError;
    expect(err).toBeInstanceOf(PlatformUnavailableError);
    expect([err.retryable, err.status, err.endpoint]).toEqual([true, 503, 'device_status']);
    expect(err.message).toContain('HTTP 503');
    expect(sim.stats.requests.device_status - before).toBe(3);
    sim.faults.http5xxRate = 0.5;
    const retries: number[] = [];
    const patient = makeClient({ retries: 30, onRetry: (i) => retries.push(i.attempt) });
    for (let i = 0; i < 5; i++) expect(await patient.deviceStatus(dev1)).toEqual({ online: true, raw: 1 });
    expect(retries.length).toBeGreaterThan(0);
  });

  test('a request that takes too long times out as retryable', async () => {
    sim.faults.latencyMs = 1000;
    const c = makeClient({ timeoutMs: 100, retries: 1 });
    const err = (await c.deviceStatus(dev1).catch((e: unknown) => e)) as PlatformUnavailableError;
    expect(err).toBeInstanceOf(PlatformUnavailableError);
    expect(err.message).toContain('no answer within 100 ms');
    expect(err.retryable).toBe(true);
  });

  test('network errors are retryable and say what happened', async () => {
    const c = new ExpeedClient({
      baseUrl: `http://127.0.0.1:${await freePort()}`,
      tokens: fixedToken,
      retries: 1,
      backoffMs: 1,
    });
    const err = (await c.deviceStatus(dev1).catch((e: unknown) => e)) as PlatformUnavailableError;
    expect(err).toBeInstanceOf(PlatformUnavailableError);
    expect(err.message).toContain('ECONNREFUSED');
  });

  test('device keys and tokens are registered with the scrubber', async () => {
    await client.deviceStatus({ id: 'dev-0002', key: 'key-0002' });
    expect(scrubber.scrub('device_key=key-0002')).toBe(`device_key=${REDACTED}`);
    // by value too, wherever it stands (not only after a field name)
    expect(scrubber.scrub('the key key-0002 was used')).toBe(`the key ${REDACTED} was used`);
    const token = await budget.get();
    expect(scrubber.scrub(`t=${token}`)).toBe(`t=${REDACTED}`);
  });

  test('a key the platform refused is not learned: invented keys in pushes cannot grow the pattern', async () => {
    await expect(client.deviceStatus({ id: 'dev-0002', key: 'made-up-9z9z' })).rejects.toThrow(/device_key|code 3/);
    expect(scrubber.scrub('the key made-up-9z9z was refused')).toBe('the key made-up-9z9z was refused');
  });

  test('no request the real platform would reject was sent', () => {
    expect(sim.stats.violations).toEqual([]);
  });
});

describe('answers that break the contract', () => {
  const c = (body: string, status = 200) =>
    new ExpeedClient({
      baseUrl: 'http://vendor.invalid',
      tokens: fixedToken,
      fetch: vendorAnswering(body, status),
      retries: 0,
    });

  test.each([
    ['<html>gateway</html>', 200, 'endpoint device_status): not JSON: <html>gateway</html>'],
    ['', 200, 'not JSON (empty body)'],
    ['[1,2]', 200, 'expected a JSON object, got an array'],
    ['{"device_status":1}', 200, 'missing result_code'],
    ['{"result_code":"x"}', 200, 'result_code is not a number ("x")'],
    ['{"result_code":0,"result_message":"ok"}', 200, 'missing "device_status"'],
    ['{"result_code":0,"device_status":"on"}', 200, '"device_status" is invalid ("on")'],
    ['not found', 404, 'HTTP 404, not JSON: not found'],
  ])('device status answered %j (HTTP %d)', async (body, status, message) => {
    const err = (await c(body, status)
      .deviceStatus(dev1)
      .catch((e: unknown) => e)) as PlatformProtocolError;
    expect(err).toBeInstanceOf(PlatformProtocolError);
    expect(err.endpoint).toBe('device_status');
    expect(err.message).toContain(message);
  });

  test.each([
    ['{"result_code":0}', 'missing "data"'],
    ['{"result_code":0,"data":{"a":1}}', '"data" is not a list'],
    ['{"result_code":0,"data":[],"cursor":"abc"}', '"cursor" is not epoch milliseconds ("abc")'],
  ])('history answered %j', async (body, message) => {
    const err = (await c(body)
      .history(dev1, {})
      .catch((e: unknown) => e)) as PlatformProtocolError;
    expect(err).toBeInstanceOf(PlatformProtocolError);
    expect(err.endpoint).toBe('datapoints');
    expect(err.message).toContain(message);
  });

  test('string codes and cursors, result_msg, null data and unreadable rows are accepted', async () => {
    const page = await c(
      JSON.stringify({
        result_code: '0',
        result_msg: 'ok',
        cursor: '1486958460000',
        data: [
          { timestamp: ' 2017-02-13T12-00-00-000', xxx: 0, yyy: 2 },
          { timestamp: '2017-02-13 12-00-01', xxx: 2 },
          'junk',
        ],
      }),
    ).history(dev1, {});
    expect(page.rows).toEqual([{ time: 1486958400000, values: { xxx: 0, yyy: 2 } }]);
    expect(page.cursor).toBe(1486958460000);
    expect(page.unreadable).toEqual([
      {
        reason: expect.stringContaining('unreadable platform timestamp "2017-02-13 12-00-01"'),
        raw: { timestamp: '2017-02-13 12-00-01', xxx: 2 },
      },
      { reason: 'row is not an object', raw: 'junk' },
    ]);
    expect(await c('{"result_code":0,"data":null}').history(dev1, {})).toEqual({ rows: [], unreadable: [] });
    expect(await c('{"result_code":0,"data":{}}').currentDatapoints(dev1)).toEqual({ row: undefined, unreadable: [] });
    // code 3 on the history endpoint: the query was refused
    const query = (await c('{"result_code":3,"result_message":"查询参数非法"}')
      .history(dev1, {})
      .catch((e: unknown) => e)) as InvalidParametersError;
    expect(query).toBeInstanceOf(InvalidParametersError);
    expect([query.kind, query.endpoint, query.code, query.vendorMessage, query.retryable]).toEqual([
      'query',
      'datapoints',
      3,
      '查询参数非法',
      false,
    ]);
    const err = (await c('{"result_code":3,"result_msg":"设备不在线"}')
      .deviceSetting(dev1, { a: 1 })
      .catch((e: unknown) => e)) as PlatformError;
    expect(err).toBeInstanceOf(DeviceOfflineError);
    expect(err.vendorMessage).toBe('设备不在线');
  });

  test('requests we refuse to send name what is wrong', async () => {
    const cl = c('{}');
    await expect(cl.history(dev1, { start: 1 })).rejects.toThrow('start and end must be given together');
    await expect(cl.history(dev1, { limit: 6001 })).rejects.toThrow(
      'limit must be a whole number from 1 to 6000, got 6001',
    );
    await expect(cl.history(dev1, { ids: ['a,b'] })).rejects.toThrow('datapoint name "a,b" cannot be sent');
    await expect(cl.deviceSetting(dev1, {})).rejects.toThrow('settings must be a non-empty object');
    await expect(cl.deviceStatus({ id: 'd', key: '钥匙' })).rejects.toThrow(
      'the key of device "d" is empty or holds characters an HTTP header cannot carry',
    );
  });

  test('the token call never shows the credentials, and code 1 is a credentials error', async () => {
    const endpoint = createTokenEndpoint({
      baseUrl: 'http://vendor.invalid',
      platformKey: 'pk-secret-1',
      secretKey: 'sk-secret-2',
      fetch: vendorAnswering('{"result_code":1,"result_message":"验证失败"}'),
    });
    const err = (await endpoint().catch((e: unknown) => e)) as PlatformError;
    expect(err.name).toBe('CredentialsRejectedError');
    expect([err.endpoint, err.code, err.vendorMessage, err.retryable]).toEqual(['token', 1, '验证失败', false]);
    expect(err.message).not.toMatch(/pk-secret-1|sk-secret-2/);
    const missing = createTokenEndpoint({
      baseUrl: 'http://vendor.invalid',
      platformKey: 'pk-secret-1',
      secretKey: 'sk-secret-2',
      fetch: vendorAnswering('{"result_code":0,"access_token":"abcd"}'),
    });
    await expect(missing()).rejects.toThrow(
      'unreadable answer from the platform (endpoint token): missing "expires_in"',
    );
  });
});
