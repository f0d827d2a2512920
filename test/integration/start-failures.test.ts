/**
 * Starts that cannot succeed, as a supervisor sees them: the real `expeed-sync` exits non-zero
 * with one line naming the cause (port in use, address not on this machine, InfluxDB or Redis
 * unreachable, a start step that throws) instead of staying alive half-started. The bound on
 * "exits" is runCli's generous timeout, not a timing assertion.
 */
import { createServer, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { runCli, startRun } from '../helpers/cli.js';
import { deleteRedisPrefix, freePort, INFLUX_URL, REDIS_URL, testPrefix, until } from '../helpers/services.js';

const prefix = testPrefix('start');
let env: Record<string, string>;
let blocker: Server;
let busyPort: number;

/** stderr without blank lines: the test wants exactly one line there */
const lines = (stderr: string) => stderr.split('\n').filter((l) => l.trim() !== '');

beforeAll(async () => {
  busyPort = await freePort();
  blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(busyPort, '127.0.0.1', resolve));
  env = {
    EXPEED_PLATFORM_KEY: 'start-pk',
    EXPEED_SECRET_KEY: 'start-sk-secret',
    EXPEED_BASE_URL: 'http://127.0.0.1:1',
    EXPEED_PREFIX: prefix,
    REDIS_URL,
    INFLUX_URL,
    INFLUX_API: 'v1',
    INFLUX_BUCKET: 'start_failures_unused',
    WEBHOOK_PORT: String(await freePort()),
    // error only: what a failed start prints must be the one line of main
    LOG_LEVEL: 'error',
  };
});

afterAll(async () => {
  await new Promise((r) => blocker?.close(r));
  await deleteRedisPrefix(prefix);
});

describe('run exits after a failed start', () => {
  test('webhook port in use: exit 1, one line naming the address and the variables', async () => {
    const r = await runCli(['run'], { ...env, WEBHOOK_PORT: String(busyPort) });
    expect(r.code).toBe(1);
    expect(lines(r.stderr)).toEqual([
      `expeed-sync run: cannot listen on 127.0.0.1:${busyPort} (WEBHOOK_HOST, WEBHOOK_PORT): address already in use (EADDRINUSE)`,
    ]);
  });

  test('an address not on this machine: EADDRNOTAVAIL', async () => {
    // 192.0.2.1 is TEST-NET-1: never assigned to a local interface
    const r = await runCli(['run'], { ...env, WEBHOOK_HOST: '192.0.2.1' });
    expect(r.code).toBe(1);
    expect(lines(r.stderr)).toEqual([
      `expeed-sync run: cannot listen on 192.0.2.1:${env.WEBHOOK_PORT} (WEBHOOK_HOST, WEBHOOK_PORT): address not available on this machine (EADDRNOTAVAIL)`,
    ]);
  });

  test('the ops port of a worker-only process in use', async () => {
    const r = await runCli(['run', '--role', 'worker', '--ops-port', String(busyPort)], env);
    expect(r.code).toBe(1);
    expect(lines(r.stderr)).toEqual([
      `expeed-sync run: cannot listen on 127.0.0.1:${busyPort} (WEBHOOK_HOST, --ops-port): address already in use (EADDRINUSE)`,
    ]);
  });

  test('InfluxDB unreachable at start: gives up after EXPEED_INFLUX_START_TIMEOUT', async () => {
    const dead = await freePort();
    const r = await runCli(['run'], {
      ...env,
      INFLUX_URL: `http://127.0.0.1:${dead}`,
      EXPEED_INFLUX_START_TIMEOUT: '2s',
    });
    expect(r.code).toBe(1);
    expect(lines(r.stderr)).toEqual([
      `expeed-sync run: cannot reach InfluxDB at http://127.0.0.1:${dead} within 2 s (ECONNREFUSED; EXPEED_INFLUX_START_TIMEOUT)`,
    ]);
  });

  test('EXPEED_RAW_RETENTION on InfluxDB 2.x+: refused at start, naming the variable', async () => {
    // INFLUX_API=v2 is taken as given: the refusal comes before any bucket request
    const r = await runCli(['run'], {
      ...env,
      INFLUX_API: 'v2',
      INFLUX_TOKEN: 'start-token-secret',
      EXPEED_RAW_RETENTION: '90d',
    });
    expect(r.code).toBe(1);
    const out = lines(r.stderr);
    expect(out).toHaveLength(1);
    expect(out[0]).toMatch(/^expeed-sync run: EXPEED_RAW_RETENTION works on InfluxDB 1\.x only/);
    expect(r.stderr).not.toContain('start-token-secret');
  });

  test('a start step that throws (devices file missing)', async () => {
    const r = await runCli(['run'], { ...env, EXPEED_DEVICES_FILE: '/nonexistent/devices.yaml' });
    expect(r.code).toBe(1);
    const out = lines(r.stderr);
    expect(out).toHaveLength(1);
    expect(out[0]).toMatch(/^expeed-sync run: .*\/nonexistent\/devices\.yaml/);
  });
});

describe('Redis unreachable', () => {
  const unreachable = { REDIS_URL: 'redis://:redis-pw-start-9@127.0.0.1:1', EXPEED_REDIS_CONNECT_TIMEOUT: '1s' };

  test.each([[['status']], [['devices', 'list']], [['dead-letters', 'list']]])(
    '%j gives up with one line, no stack trace, no password',
    async (args) => {
      const r = await runCli(args, { ...env, ...unreachable, LOG_LEVEL: 'info' });
      expect(r.code).toBe(1);
      expect(lines(r.stderr)).toEqual([`expeed-sync ${args[0]}: cannot reach Redis at 127.0.0.1:1 (ECONNREFUSED)`]);
      expect(r.stdout).toBe('');
    },
  );

  test('run waits, logging each attempt, and a signal still stops it', async () => {
    const run = startRun({ ...env, ...unreachable, LOG_LEVEL: 'warn' });
    try {
      await until('two logged attempts', async () => run.stderr().includes('(attempt 2)'), { timeoutMs: 60_000 });
      const logged = lines(run.stderr()).map((l) => JSON.parse(l) as { msg: string; attempt: number });
      expect(logged.slice(0, 2).map((l) => l.msg)).toEqual([
        'cannot reach Redis at 127.0.0.1:1 (ECONNREFUSED); still waiting (attempt 1)',
        'cannot reach Redis at 127.0.0.1:1 (ECONNREFUSED); still waiting (attempt 2)',
      ]);
      expect(run.stderr()).not.toContain('redis-pw-start-9');
      expect(run.stderr()).not.toContain('Unhandled error event');
    } finally {
      run.child.kill('SIGTERM');
    }
    const exited = await run.exited;
    expect(exited.code !== 0 || exited.signal === 'SIGTERM').toBe(true);
  }, 120_000);
});
