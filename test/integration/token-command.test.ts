import { afterAll, describe, expect, test } from 'vitest';
import { Redis } from 'ioredis';
import { secretsOf } from '../../src/base/config.js';
import { loadConfig } from '../../src/base/load-config.js';
import { createLogger } from '../../src/base/log.js';
import { SecretScrubber } from '../../src/base/secrets.js';
import { DeviceRegistry } from '../../src/devices/registry.js';
import type { CommandContext } from '../../src/cli/context.js';
import { command, describeUsage } from '../../src/cli/commands/token.js';
import { platformDay } from '../../src/platform/timestamp.js';
import { REDIS_URL, deleteRedisPrefix, testPrefix } from '../helpers/services.js';

const prefix = testPrefix('tokencmd');
const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 2 });

function context(out: string[]): CommandContext {
  const config = loadConfig({
    EXPEED_PREFIX: prefix,
    REDIS_URL,
    EXPEED_PLATFORM_KEY: 'pk-cmd',
    EXPEED_SECRET_KEY: 'sk-cmd',
    LOG_LEVEL: 'silent',
  });
  const scrubber = new SecretScrubber(secretsOf(config));
  const cleanups: Array<() => Promise<void> | void> = [];
  return {
    config,
    scrubber,
    log: createLogger({ level: 'silent', scrubber }),
    redis: () => redis,
    registry: () => new DeviceRegistry(redis, prefix),
    app: () => {
      throw new Error('the token commands build no app');
    },
    connect: async () => undefined,
    out: (line) => out.push(line),
    onClose: (fn) => cleanups.push(fn),
    close: async () => {
      for (const fn of cleanups.reverse()) await fn();
    },
  };
}

afterAll(async () => {
  await deleteRedisPrefix(prefix);
  redis.disconnect();
});

describe('expeed-sync token', () => {
  test('shows the day count, reserve, reset and expiry, never the token', async () => {
    const now = Date.now();
    const { day, end } = platformDay(now, 'Asia/Shanghai');
    const token = 'very-secret-access-token-123';
    await redis.set(`${prefix}:token:calls:${day}`, '12');
    await redis.hset(`${prefix}:token:current`, {
      token,
      expiresAt: now + 90 * 60_000,
      fetchedAt: now - 30 * 60_000,
      ttlMs: 7_200_000,
    });
    const out: string[] = [];
    const ctx = context(out);
    expect(await command.run([], ctx)).toBe(0);
    await ctx.close();
    const text = out.join('\n');
    expect(out[0]).toBe(`platform day  ${day} (Asia/Shanghai)`);
    expect(out[1]).toBe(
      'token calls   12 of 200 today, 188 left; scheduled work stops at 190, the last 10 are kept for commands run by hand',
    );
    expect(out[2]).toContain(`resets at     ${platformDayText(end)}`);
    expect(out[3]).toMatch(
      /^access token  cached, expires \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} Asia\/Shanghai \(in 1h 3\dm\)$/,
    );
    expect(text).not.toContain(token);

    const json: string[] = [];
    expect(await command.run(['--json'], context(json))).toBe(0);
    const parsed = JSON.parse(json.join('\n'));
    expect(parsed).toMatchObject({
      day,
      calls: 12,
      limit: 200,
      reserve: 10,
      resetsAt: end,
      tokenExpiresAt: now + 90 * 60_000,
      timezone: 'Asia/Shanghai',
    });
    expect(json.join('\n')).not.toContain(token);
  });

  test('--clear-cooldown lifts a credentials cool-down', async () => {
    await redis.set(
      `${prefix}:token:cooldown`,
      JSON.stringify({ until: Date.now() + 600_000, reason: 'rejected', credentialsId: '' }),
      'PX',
      600_000,
    );
    const out: string[] = [];
    expect(await command.run(['--clear-cooldown'], context(out))).toBe(0);
    expect(out[0]).toBe('token cool-down lifted: the next platform call may fetch a token');
    expect(await redis.exists(`${prefix}:token:cooldown`)).toBe(0);
  });

  test('--clear-cooldown starts the backfill jobs that waited for the cool-down', async () => {
    const { Queue } = await import('bullmq');
    const { CooldownWaits } = await import('../../src/pull/cooldown-waits.js');
    const queue = new Queue('backfill', { connection: redis, prefix });
    try {
      const until = Date.now() + 600_000;
      await redis.set(
        `${prefix}:token:cooldown`,
        JSON.stringify({ until, ms: 600_000, kind: 'credentials', reason: 'rejected', credentialsId: '' }),
        'PX',
        600_000,
      );
      const waits = new CooldownWaits(redis, prefix);
      for (const id of ['w1', 'w2']) {
        await queue.add(
          'backfill',
          { deviceId: id, from: 0, to: 1, reason: 'catch-up' },
          { jobId: id, delay: 600_000 },
        );
        await waits.add(id, until);
      }
      // a job that already ran again is only forgotten
      await waits.add('gone', until);
      const out: string[] = [];
      expect(await command.run(['--clear-cooldown'], context(out))).toBe(0);
      expect(out.slice(0, 2)).toEqual([
        'token cool-down lifted: the next platform call may fetch a token',
        '2 backfill job(s) that waited for the cool-down start now',
      ]);
      expect(await queue.getJobCounts('delayed', 'waiting')).toMatchObject({ delayed: 0, waiting: 2 });
      expect(await waits.waiting()).toEqual({ jobs: 0 });
    } finally {
      await queue.obliterate({ force: true });
      await queue.close();
    }
  });

  test('a fresh token rejected: the pause, its reason and its doubling are shown; --clear-cooldown also forgets the streak', async () => {
    const { TokenBudget } = await import('../../src/platform/token/budget.js');
    const budget = new TokenBudget({ redis, prefix, cooldownMs: 600_000 });
    await redis.hset(`${prefix}:token:current`, {
      token: 'never-worked-token',
      expiresAt: Date.now() + 3_600_000,
      fetchedAt: Date.now(),
      ttlMs: 7_200_000,
    });
    await expect(budget.rejected('never-worked-token', '令牌过期')).rejects.toMatchObject({
      name: 'TokenCooldownError',
      retryable: true,
    });
    const out: string[] = [];
    expect(await command.run([], context(out))).toBe(0);
    const line = out.find((l) => l.startsWith('cool-down'));
    expect(line).toMatch(
      /^cool-down     token calls paused until .* Asia\/Shanghai \(in 10m\), the platform rejected a freshly fetched access token \(the pause doubles while that repeats\): code 1 "令牌过期" for a token that had never worked$/,
    );
    expect(out.join('\n')).not.toContain('never-worked-token');
    const json: string[] = [];
    await command.run(['--json'], context(json));
    expect(JSON.parse(json.join('\n'))).toMatchObject({ cooldownKind: 'token' });
    expect(await redis.exists(`${prefix}:token:rejections`)).toBe(1);
    const cleared: string[] = [];
    await command.run(['--clear-cooldown'], context(cleared));
    expect(cleared[0]).toBe('token cool-down lifted: the next platform call may fetch a token');
    expect(await redis.exists(`${prefix}:token:rejections`)).toBe(0);
    await budget.close();
  });

  test('states of the budget are spelled out', () => {
    const base = { day: '2024-05-01', limit: 200, reserve: 10, resetsAt: Date.UTC(2024, 4, 1, 16), refreshing: false };
    const at = Date.UTC(2024, 4, 1, 14);
    expect(describeUsage({ ...base, calls: 190 }, 'Asia/Shanghai', at)).toEqual([
      'platform day  2024-05-01 (Asia/Shanghai)',
      'token calls   190 of 200 today, 10 left; scheduled work stops at 190, the last 10 are kept for commands run by hand',
      'resets at     2024-05-02 00:00:00 Asia/Shanghai (in 2h 0m)',
      'access token  none cached (the next platform call fetches one)',
      'state         scheduled work is stopped; only commands run by hand may fetch a token',
    ]);
    const spent = describeUsage(
      {
        ...base,
        calls: 200,
        tokenExpiresAt: at - 1,
        cooldownUntil: at + 60_000,
        cooldownReason: 'bad keys',
        refreshing: true,
      },
      'Asia/Shanghai',
      at,
    );
    expect(spent.slice(3)).toEqual([
      'access token  expired at 2024-05-01 21:59:59 Asia/Shanghai (the next platform call fetches one)',
      'refresh       a process is fetching a new token right now',
      'state         budget spent: no token can be fetched until the reset',
      'cool-down     token calls paused until 2024-05-01 22:01:00 Asia/Shanghai (in 1m), the platform rejected EXPEED_PLATFORM_KEY / EXPEED_SECRET_KEY: bad keys',
    ]);
  });

  test('expeed-sync status shows the cool-down, its end and its reason', async () => {
    const { renderStatus } = await import('../../src/cli/commands/status.js');
    const at = Date.UTC(2024, 4, 1, 14);
    const token = {
      day: '2024-05-01',
      calls: 3,
      limit: 200,
      reserve: 10,
      resetsAt: Date.UTC(2024, 4, 1, 16),
      refreshing: false,
    };
    const report = {
      at,
      summary: { ok: 0, failing: 0, stale: 0, 'never synced': 0 },
      staleAfterMs: 2 * 86_400_000,
      devices: [],
      queues: {},
      deadLetters: 0,
      errors: {},
    };
    const paused = renderStatus(
      {
        ...report,
        token: {
          ...token,
          cooldownUntil: at + 900_000,
          cooldownKind: 'token',
          cooldownReason: 'code 1 "token过期" for a token that had never worked',
        },
      },
      'Asia/Shanghai',
      (x) => x,
    );
    expect(paused).toContain(
      '  COOL-DOWN: no token calls until 2024-05-01 22:15:00 Asia/Shanghai — the platform rejected a freshly fetched access token (the pause doubles while that repeats): code 1 "token过期" for a token that had never worked',
    );
    expect(renderStatus({ ...report, token }, 'Asia/Shanghai', (x) => x)).not.toContain('COOL-DOWN');
  });

  test('rejects arguments it does not know', async () => {
    await expect(command.run(['extra'], context([]))).rejects.toThrow('token takes no arguments (got "extra")');
    await expect(command.run(['--nope'], context([]))).rejects.toThrow('unknown option --nope');
  });
});

function platformDayText(end: number): string {
  const d = new Date(end + 8 * 3_600_000);
  return `${d.toISOString().slice(0, 10)} 00:00:00 Asia/Shanghai`;
}
