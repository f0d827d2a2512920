import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { Redis } from 'ioredis';
import { DeviceRegistry, DevicesFileError, readDevicesFile } from '../../src/devices/registry.js';
import { runCli } from '../helpers/cli.js';
import { deleteRedisPrefix, REDIS_URL, testPrefix } from '../helpers/services.js';

const prefix = testPrefix('devices');
const redis = new Redis(REDIS_URL);
const dir = mkdtempSync(join(tmpdir(), 'expeed-devices-'));

afterAll(async () => {
  await deleteRedisPrefix(prefix);
  redis.disconnect();
});

describe('device registry', () => {
  test('merges a YAML file, keeps addedAt and operator names, and lists in id order', async () => {
    let now = 1000;
    const registry = new DeviceRegistry(redis, `${prefix}-a`, () => now);
    const file = join(dir, 'devices.yaml');
    writeFileSync(file, 'devices:\n  - id: "设备 1/东"\n    key: k-one\n    name: East\n  - {id: 42, key: k-two}\n');
    expect(await registry.mergeFile(file)).toBe(2);
    now = 2000;
    await registry.upsert({ id: '42', key: 'k-two' }, 'cli');
    expect(await registry.list()).toEqual([
      { id: '42', key: 'k-two', addedAt: 1000, origin: 'file' },
      { id: '设备 1/东', key: 'k-one', name: 'East', addedAt: 1000, origin: 'file' },
    ]);
    expect(await registry.addIfMissing({ id: '42', key: 'other' }, 'push')).toBe(false);
    expect((await registry.get('42'))?.key).toBe('k-two');
    await registry.markFailure('42', { code: 3, message: 'device_key不存在' });
    expect((await registry.get('42'))?.failure).toEqual({ code: 3, message: 'device_key不存在', at: 2000 });
    await registry.upsert({ id: '42', key: 'k-new' }, 'cli');
    expect((await registry.get('42'))?.failure).toBeUndefined();
    await deleteRedisPrefix(`${prefix}-a`);
  });

  test.each([
    ['bad.json', '{"devices": [', 'is not valid JSON'],
    ['nolist.yaml', 'foo: bar\n', 'expected a list'],
    ['nokey.json', '[{"id":"a"}]', 'entry 1 a: "key" must be a non-empty string'],
    ['twice.json', '[{"id":"a","key":"k"},{"id":"a","key":"k"}]', 'listed twice'],
    ['missing.json', null, 'cannot be read (ENOENT)'],
  ])('a bad devices file (%s) names the problem', async (name, content, problem) => {
    const file = join(dir, name);
    if (content !== null) writeFileSync(file, content);
    const err = await readDevicesFile(file).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DevicesFileError);
    expect((err as Error).message).toContain('EXPEED_DEVICES_FILE');
    expect((err as Error).message).toContain(problem);
  });
});

describe('expeed-sync devices', () => {
  const env = { EXPEED_PREFIX: prefix, REDIS_URL };

  test('add, list, remove through the real command; keys never printed', async () => {
    const add = await runCli(['devices', 'add', 'pump 7', '--key', 'very-secret-key', '--name', 'Pump'], env);
    expect(add.stderr).toBe('');
    expect(add.stdout.trim()).toBe('added device pump 7');
    expect(add.code).toBe(0);

    const list = await runCli(['devices', 'list'], env);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/^ID\s+NAME\s+ORIGIN\s+ADDED\s+STATE\npump 7\s+Pump\s+cli\s+\S+\s+ok\n$/);
    const json = await runCli(['devices', 'list', '--json'], env);
    expect(JSON.parse(json.stdout)).toMatchObject([{ id: 'pump 7', name: 'Pump', origin: 'cli' }]);
    expect(list.stdout + json.stdout).not.toContain('very-secret-key');

    const removed = await runCli(['devices', 'remove', 'pump 7'], env);
    expect(removed.stdout.trim()).toBe('removed device pump 7');
    const again = await runCli(['devices', 'remove', 'pump 7'], env);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('no device "pump 7"');
  });

  test('usage and configuration errors exit non-zero with one line naming the problem', async () => {
    const noKey = await runCli(['devices', 'add', 'x'], env);
    expect(noKey.code).toBe(2);
    expect(noKey.stderr.trim()).toBe(
      'expeed-sync devices: usage: devices add needs --key KEY (the device_key the platform issued)',
    );
    const badEnv = await runCli(['devices', 'list'], { ...env, EXPEED_TOKEN_DAILY_LIMIT: 'lots' });
    expect(badEnv.code).toBe(1);
    expect(badEnv.stderr.trim()).toBe(
      'expeed-sync devices: configuration error: EXPEED_TOKEN_DAILY_LIMIT: expected a whole number, got "lots"',
    );
  });
});
