import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Redis } from 'ioredis';
import { DeviceRegistry } from '../../src/devices/registry.js';
import { Checkpoints } from '../../src/pull/checkpoints.js';
import { runCli } from '../helpers/cli.js';
import { createTestDatabase, deleteRedisPrefix, INFLUX_URL, REDIS_URL, testPrefix } from '../helpers/services.js';
import { testEnv } from '../fixtures/pull-env.js';

const DAY = 86_400_000;

describe('expeed-sync status at scale', () => {
  const prefix = testPrefix('statuscmd');
  const redis = new Redis(REDIS_URL);
  const dir = mkdtempSync(join(tmpdir(), 'expeed-status-'));
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let env: Record<string, string>;

  beforeAll(async () => {
    db = await createTestDatabase('statuscmd');
    const file = join(dir, 'devices.json');
    // 40 healthy devices and one of each problem; nothing merged the file before `status` runs
    const healthy = Array.from({ length: 40 }, (_, i) => ({
      id: `ok-${String(i).padStart(2, '0')}`,
      key: `k-ok-${i}`,
    }));
    writeFileSync(
      file,
      JSON.stringify([
        ...healthy,
        { id: 'stale-1', key: 'k-s' },
        { id: 'failing-1', key: 'k-f' },
        { id: 'new-1', key: 'k-n' },
      ]),
    );
    env = {
      ...testEnv({ simUrl: 'http://127.0.0.1:9', prefix, db: db.name, influxUrl: INFLUX_URL }),
      EXPEED_DEVICES_FILE: file,
    };
    // state the sync would have left: checkpoints, and one device the platform refused
    const checkpoints = new Checkpoints({ redis, prefix });
    const now = Date.now();
    for (const d of healthy) await checkpoints.initialise(d.id, now - DAY / 2);
    await checkpoints.initialise('stale-1', now - 3 * DAY);
    await checkpoints.initialise('failing-1', now - DAY / 2);
    await new DeviceRegistry(redis, prefix).upsert({ id: 'failing-1', key: 'k-f' }, 'cli');
    await new DeviceRegistry(redis, prefix).markFailure('failing-1', { code: 3, message: 'device_key不存在' });
  });

  afterAll(async () => {
    await deleteRedisPrefix(prefix);
    redis.disconnect();
    await db?.drop();
  });

  test('summary by state, then only the devices with problems; --all, --device and --json', async () => {
    const text = await runCli(['status'], env);
    expect(text.stderr).toBe('');
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^DEVICES \(43\)$/m);
    expect(text.stdout).toContain('ok 40  failing 1  stale 1  never synced 1  (stale: synced more than 2d ago)');
    const deviceLines = text.stdout.split('\n').filter((l) => /^ {2}(ok|stale|failing|new)-/.test(l));
    expect(deviceLines.map((l) => l.trim().split(/\s+/)[0]).sort()).toEqual(['failing-1', 'new-1', 'stale-1']);
    expect(text.stdout).toMatch(/failing-1 +failing .*code 3: device_key不存在/);

    const all = await runCli(['status', '--all'], env);
    expect(all.stdout.split('\n').filter((l) => /^ {2}(ok|stale|failing|new)-/.test(l))).toHaveLength(43);

    const one = await runCli(['status', '--device', 'ok-07'], env);
    expect(
      one.stdout
        .split('\n')
        .filter((l) => /^ {2}(ok|stale|failing|new)-/.test(l))
        .map((l) => l.trim().split(/\s+/).slice(0, 2)),
    ).toEqual([['ok-07', 'ok']]);
    const unknown = await runCli(['status', '--device', 'nope'], env);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain('device "nope" is not registered');

    const json = JSON.parse((await runCli(['status', '--json'], env)).stdout);
    expect(json.devices).toHaveLength(43);
    expect(json.summary).toEqual({ ok: 40, failing: 1, stale: 1, 'never synced': 1 });
    expect(json.staleAfterMs).toBe(2 * DAY);
    expect(json.devices.find((d: { id: string }) => d.id === 'stale-1')).toMatchObject({
      state: 'stale',
      failedJobs: 0,
    });
    expect(Object.keys(json)).toEqual(
      expect.arrayContaining(['at', 'devices', 'queues', 'token', 'deadLetters', 'errors']),
    );
  }, 60_000);
});
