import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ExpeedClient } from '../../src/platform/client.js';
import { createTokenEndpoint } from '../../src/platform/token/endpoint.js';
import { DeviceOfflineError, SettingOutcomeUnknownError } from '../../src/platform/errors.js';
import { TokenBudget } from '../../src/platform/token/budget.js';
import { sendSetting, waitForResult, type SendSettingDeps } from '../../src/settings/send-setting.js';
import { UnknownDeviceError } from '../../src/base/failure.js';
import { runCli } from '../helpers/cli.js';
import { createContext } from '../../src/cli/context.js';
import { command as setCommand, SET_EXIT } from '../../src/cli/commands/set.js';
import { REDIS_URL } from '../helpers/services.js';
import { PLATFORM_KEY, SECRET_KEY, startStack, TZ, type Stack } from './push-stack.js';

/**
 * The setting round trip through the simulator: POST device_setting, the pending command in
 * Redis, the msg_type 3 result pushed back to the webhook, each state in `device_setting`.
 */

let s: Stack;
let tokens: TokenBudget;
let client: ExpeedClient;
let deps: SendSettingDeps;

beforeAll(async () => {
  s = await startStack({
    sim: {
      devices: [
        { id: 'dev-s', key: 'key-s' },
        { id: 'dev-off', key: 'key-off', online: false },
        { id: 'dev-cli', key: 'key-cli' },
      ],
      settingDelayMs: 100,
      settingResult: (_id, settings) => ('never' in settings ? 'never' : 'fail' in settings ? 1 : 0),
    },
  });
  for (const d of s.sim!.devices) await s.registry.upsert({ id: d.id, key: d.key }, 'cli');
  tokens = new TokenBudget({
    redis: s.redis,
    prefix: s.prefix,
    fetchToken: createTokenEndpoint({ baseUrl: s.sim!.url, platformKey: PLATFORM_KEY, secretKey: SECRET_KEY }),
    timezone: TZ,
  });
  client = new ExpeedClient({ baseUrl: s.sim!.url, tokens, timezone: TZ });
  deps = {
    platform: client,
    registry: s.registry,
    pending: s.pending,
    writer: s.writer,
    logger: s.logger,
    timeoutMs: 30_000,
  };
});

afterAll(async () => {
  await client?.close();
  await tokens?.close();
  await s?.close();
});

const settingRows = (id: string, messageId: string) =>
  s.rows(`SELECT * FROM device_setting WHERE device_id = '${id}' AND message_id = '${messageId}'`);

describe('device settings', () => {
  test('applied: sent, then the pushed result; both states recorded with the settings', async () => {
    const sent = await sendSetting(deps, 'dev-s', { temp: 25, switch: 1 });
    expect(sent.recorded).toBe(true);
    expect(s.sim!.stats.settings).toContainEqual({
      deviceId: 'dev-s',
      messageId: sent.messageId,
      settings: { temp: 25, switch: 1 },
    });
    const result = await waitForResult({ pending: s.pending, writer: s.writer }, sent.messageId, { pollMs: 50 });
    expect(result).toMatchObject({
      messageId: sent.messageId,
      deviceId: 'dev-s',
      state: 'applied',
      settings: { temp: 25, switch: 1 },
      sentAt: sent.command.sentAt,
    });
    const rows = await s.until(
      'two states',
      () => settingRows('dev-s', sent.messageId),
      (r) => r.length === 2,
    );
    expect(rows).toEqual([
      {
        time: sent.command.sentAt,
        device_id: 'dev-s',
        message_id: sent.messageId,
        state: 'sent',
        settings: '{"temp":25,"switch":1}',
      },
      {
        time: result.resolvedAt,
        device_id: 'dev-s',
        message_id: sent.messageId,
        state: 'applied',
        settings: '{"temp":25,"switch":1}',
      },
    ]);
  });

  test('failed: the device reports failure', async () => {
    const sent = await sendSetting(deps, 'dev-s', { fail: true });
    const result = await waitForResult({ pending: s.pending, writer: s.writer }, sent.messageId, { pollMs: 50 });
    expect(result.state).toBe('failed');
    const rows = await s.until(
      'two states',
      () => settingRows('dev-s', sent.messageId),
      (r) => r.length === 2,
    );
    expect(rows.map((r) => r.state)).toEqual(['sent', 'failed']);
  });

  test('timeout: no result before the deadline; a late result is still recorded', async () => {
    const sent = await sendSetting({ ...deps, timeoutMs: 1500 }, 'dev-s', { never: 1 });
    const result = await waitForResult({ pending: s.pending, writer: s.writer }, sent.messageId, { pollMs: 50 });
    expect(result.state).toBe('timeout');
    expect(result.resolvedAt!).toBeGreaterThanOrEqual(sent.command.deadline!);
    const rows = await s.until(
      'two states',
      () => settingRows('dev-s', sent.messageId),
      (r) => r.length === 2,
    );
    expect(rows).toEqual([
      {
        time: sent.command.sentAt,
        device_id: 'dev-s',
        message_id: sent.messageId,
        state: 'sent',
        settings: '{"never":1}',
      },
      {
        time: result.resolvedAt,
        device_id: 'dev-s',
        message_id: sent.messageId,
        state: 'timeout',
        settings: '{"never":1}',
      },
    ]);
    expect(await s.pending.waiting()).not.toContain(sent.messageId);

    const late = await fetch(s.url, {
      method: 'POST',
      body: JSON.stringify({ msg_type: 3, message_id: sent.messageId, device_id: 'dev-s', set_result: 0 }),
    });
    expect(late.status).toBe(200);
    const after = await s.until(
      'late result',
      () => settingRows('dev-s', sent.messageId),
      (r) => r.length === 3,
    );
    expect(after.map((r) => r.state)).toEqual(['sent', 'timeout', 'applied']);
    expect((await s.pending.get(sent.messageId))?.state).toBe('applied');
  });

  test('a device offline (code 3) is a clear error and nothing is recorded', async () => {
    const before = s.sim!.stats.settings.length;
    const err = await sendSetting(deps, 'dev-off', { temp: 20 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DeviceOfflineError);
    expect((err as Error).message).toContain('device "dev-off" is offline and cannot take a setting now');
    expect(s.sim!.stats.settings.length).toBe(before);
    expect(await s.rows(`SELECT * FROM device_setting WHERE device_id = 'dev-off'`)).toEqual([]);
  });

  describe('never sent twice', () => {
    /** Lets the request reach the simulator, then loses its answer the way the test says. */
    function answerLost(how: '502' | 'reset' | 'timeout'): typeof fetch {
      return async (input, init) => {
        const res = await fetch(input, init);
        if (!String(input).includes('/device_setting')) return res;
        await res.text();
        if (how === '502') return new Response('<html>502 Bad Gateway</html>', { status: 502 });
        // the answer never comes: the client's timeout aborts the wait
        if (how === 'timeout')
          await new Promise((_, reject) => init?.signal?.addEventListener('abort', () => reject(init.signal?.reason)));
        throw new TypeError('fetch failed', {
          cause: Object.assign(new Error('other side closed'), { code: 'ECONNRESET' }),
        });
      };
    }

    const LOST = {
      '502': ['HTTP 502', 502],
      reset: ['ECONNRESET', 104],
      timeout: ['no answer within 300 ms', 300],
    } as const;
    for (const how of ['502', 'reset', 'timeout'] as const) {
      test(`${how} after the request reached the platform: sent once, outcome unknown, recorded as "unknown"`, async () => {
        const c = new ExpeedClient({
          baseUrl: s.sim!.url,
          tokens,
          timezone: TZ,
          backoffMs: 1,
          maxBackoffMs: 2,
          timeoutMs: 300,
          fetch: answerLost(how),
        });
        const before = { settings: s.sim!.stats.settings.length, requests: s.sim!.stats.requests.setting ?? 0 };
        const [says, value] = LOST[how];
        const err = await sendSetting({ ...deps, platform: c }, 'dev-s', { unsure: value }).catch((e: unknown) => e);
        expect(s.sim!.stats.requests.setting - before.requests).toBe(1);
        expect(err).toBeInstanceOf(SettingOutcomeUnknownError);
        expect((err as SettingOutcomeUnknownError).retryable).toBe(false);
        expect((err as Error).message).toContain('may or may not have been applied');
        expect((err as Error).message).toContain(says);
        expect(s.sim!.stats.settings.slice(before.settings)).toEqual([
          { deviceId: 'dev-s', messageId: expect.any(String), settings: { unsure: value } },
        ]);
        const rows = await s.until(
          'unknown state',
          () => s.rows(`SELECT * FROM device_setting WHERE device_id = 'dev-s' AND state = 'unknown'`),
          (r) => r.some((x) => x.settings === `{"unsure":${value}}`),
        );
        expect(rows.filter((x) => x.settings === `{"unsure":${value}}`)).toEqual([
          {
            time: expect.any(Number),
            device_id: 'dev-s',
            message_id: '',
            state: 'unknown',
            settings: `{"unsure":${value}}`,
          },
        ]);
      });
    }

    test('HTTP 429 or 408 (the platform did not take it) is retried', async () => {
      let answered = 0;
      const busy: typeof fetch = async (input, init) => {
        if (String(input).includes('/device_setting') && answered < 2)
          return new Response('', { status: [429, 408][answered++] });
        return fetch(input, init);
      };
      const c = new ExpeedClient({
        baseUrl: s.sim!.url,
        tokens,
        timezone: TZ,
        backoffMs: 1,
        maxBackoffMs: 2,
        fetch: busy,
      });
      const before = s.sim!.stats.settings.length;
      const sent = await sendSetting({ ...deps, platform: c }, 'dev-s', { busyTwice: 1 });
      expect(answered).toBe(2);
      expect(s.sim!.stats.settings.slice(before)).toEqual([
        { deviceId: 'dev-s', messageId: sent.messageId, settings: { busyTwice: 1 } },
      ]);
    });

    test('a connection refused never reached the platform: that one is retried', async () => {
      let refused = 0;
      const flaky: typeof fetch = async (input, init) => {
        if (String(input).includes('/device_setting') && refused++ === 0) {
          throw new TypeError('fetch failed', {
            cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }),
          });
        }
        return fetch(input, init);
      };
      const c = new ExpeedClient({
        baseUrl: s.sim!.url,
        tokens,
        timezone: TZ,
        backoffMs: 1,
        maxBackoffMs: 2,
        fetch: flaky,
      });
      const before = s.sim!.stats.settings.length;
      const sent = await sendSetting({ ...deps, platform: c }, 'dev-s', { refusedOnce: 1 });
      expect(refused).toBe(2);
      expect(s.sim!.stats.settings.slice(before)).toEqual([
        { deviceId: 'dev-s', messageId: sent.messageId, settings: { refusedOnce: 1 } },
      ]);
    });

    test('code 1 (certainly not applied) is retried once with a fresh token; an unknown code is not retried', async () => {
      await client.deviceStatus({ id: 'dev-s', key: 'key-s' }); // the cached token has worked
      s.sim!.faults.codeStorm(1, 1, 'setting');
      const before = { settings: s.sim!.stats.settings.length, requests: s.sim!.stats.requests.setting ?? 0 };
      const sent = await sendSetting(deps, 'dev-s', { afterCode1: 1 });
      expect(s.sim!.stats.requests.setting - before.requests).toBe(2);
      expect(s.sim!.stats.settings.slice(before.settings)).toEqual([
        { deviceId: 'dev-s', messageId: sent.messageId, settings: { afterCode1: 1 } },
      ]);

      s.sim!.faults.codeStorm(42, 1, 'setting');
      const requests = s.sim!.stats.requests.setting;
      const err = await sendSetting(deps, 'dev-s', { afterCode42: 1 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SettingOutcomeUnknownError);
      expect((err as Error).message).toContain('unknown result code 42');
      expect(s.sim!.stats.requests.setting - requests).toBe(1);
    });

    test('EXPEED_SETTING_BODY=data wraps the settings in {"data": ...}', async () => {
      const c = new ExpeedClient({ baseUrl: s.sim!.url, tokens, timezone: TZ, settingBody: 'data' });
      const sent = await sendSetting({ ...deps, platform: c }, 'dev-s', { temp: 21 });
      expect(s.sim!.stats.settings).toContainEqual({
        deviceId: 'dev-s',
        messageId: sent.messageId,
        settings: { data: { temp: 21 } },
      });
      // what we record is what the operator asked for
      expect(sent.command.settings).toEqual({ temp: 21 });
    });
  });

  test('an unregistered device is refused before anything is sent', async () => {
    await expect(sendSetting(deps, 'dev-nobody', { temp: 20 })).rejects.toBeInstanceOf(UnknownDeviceError);
  });
});

describe('expeed-sync set', () => {
  const env = () => ({
    EXPEED_BASE_URL: s.sim!.url,
    EXPEED_PLATFORM_KEY: PLATFORM_KEY,
    EXPEED_SECRET_KEY: SECRET_KEY,
    EXPEED_PREFIX: s.prefix,
    REDIS_URL,
    INFLUX_URL: s.db.url,
    INFLUX_API: 'v1',
    INFLUX_BUCKET: s.db.name,
    EXPEED_SETTING_TIMEOUT: '3s',
  });

  test('set sends through the app: its one metered, rate-limited client counts the call like every other', async () => {
    const ctx = createContext({ ...env(), LOG_LEVEL: 'silent' });
    const out: string[] = [];
    ctx.out = (line) => out.push(line);
    try {
      await ctx.connect();
      const before = s.sim!.stats.requests.setting ?? 0;
      expect(await setCommand.run(['dev-cli', 'temp=21'], ctx)).toBe(SET_EXIT.ok);
      expect(out[0]).toMatch(/^sent \{"temp":21\} to dev-cli: message_id [0-9a-f]+/);
      expect(s.sim!.stats.requests.setting - before).toBe(1);
      // the call is in the app's metrics (the service's /metrics counts settings the same way)
      const calls = (await (await ctx.app()).metrics.platformRequests.get()).values.filter(
        (v) => v.labels.endpoint === 'device_setting',
      );
      expect(calls.map((v) => [v.labels.result, v.value])).toEqual([['code_0', 1]]);
    } finally {
      await ctx.close();
    }
  });

  test('--wait exits 0 when applied, 3 when failed, 4 on timeout; 5 when the device is offline', async () => {
    const applied = await runCli(['set', 'dev-cli', 'temp=26', 'mode=eco', '--wait'], env());
    expect(applied.stderr).toBe('');
    expect(applied.code).toBe(0);
    expect(applied.stdout).toMatch(
      /^sent \{"temp":26,"mode":"eco"\} to dev-cli: message_id [0-9a-f]+, result expected before .* Asia\/Shanghai\napplied: dev-cli reported the setting as applied\n$/,
    );
    const messageId = /message_id ([0-9a-f]+)/.exec(applied.stdout)![1];
    const rows = await s.until(
      'cli states',
      () => settingRows('dev-cli', messageId),
      (r) => r.length === 2,
    );
    expect(rows.map((r) => [r.state, r.settings])).toEqual([
      ['sent', '{"temp":26,"mode":"eco"}'],
      ['applied', '{"temp":26,"mode":"eco"}'],
    ]);

    const failed = await runCli(['set', 'dev-cli', 'fail=1', '--wait'], env());
    expect(failed.code).toBe(3);
    expect(failed.stderr).toContain('reported that the setting failed');

    const timeout = await runCli(['set', 'dev-cli', 'never=1', '--wait'], env());
    expect(timeout.code).toBe(4);
    expect(timeout.stderr).toContain('no result from dev-cli within 3 s');

    const offline = await runCli(['set', 'dev-off', 'temp=1'], env());
    expect(offline.code).toBe(5);
    expect(offline.stderr).toContain('device "dev-off" is offline');
    expect(offline.stderr).not.toContain(SECRET_KEY);

    const usage = await runCli(['set', 'dev-cli', 'temp'], env());
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('"temp" is not key=value');
  });

  test('exit 6 when the outcome is unknown (sent once); EXPEED_SETTING_BODY=data wraps the settings', async () => {
    // a 5xx once the request reached the platform: sent once, exit 6, "may or may not"
    await tokens.get(); // cached, so that only device_setting meets the 5xx
    const requests = s.sim!.stats.requests.setting ?? 0;
    s.sim!.faults.http5xxRate = 1;
    const unsure = await runCli(['set', 'dev-cli', 'temp=27'], env()).finally(() => (s.sim!.faults.http5xxRate = 0));
    expect(unsure.code).toBe(6);
    expect(unsure.stderr).toContain('MAY OR MAY NOT have been applied');
    expect(unsure.stderr).toContain('HTTP 503');
    expect(s.sim!.stats.requests.setting - requests).toBe(1);
    const unknownRows = await s.until(
      'unknown state',
      () => s.rows(`SELECT * FROM device_setting WHERE device_id = 'dev-cli' AND state = 'unknown'`),
      (r) => r.length > 0,
    );
    expect(unknownRows.map((r) => [r.message_id, r.settings])).toEqual([['', '{"temp":27}']]);

    const wrapped = await runCli(['set', 'dev-cli', 'temp=28'], { ...env(), EXPEED_SETTING_BODY: 'data' });
    expect(wrapped.code).toBe(0);
    expect(s.sim!.stats.settings.at(-1)?.settings).toEqual({ data: { temp: 28 } });
  });
});
