import { createServer, type Server } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createContext } from '../../src/cli/context.js';
import { command } from '../../src/cli/commands/check.js';
import { startSimulator, type Simulator } from '../../src/simulator/index.js';
import { runCli } from '../helpers/cli.js';
import {
  INFLUX_URL,
  REDIS_URL,
  createTestDatabase,
  deleteRedisPrefix,
  freePort,
  startRedisServer,
  testPrefix,
} from '../helpers/services.js';

const prefix = testPrefix('check');
const dir = mkdtempSync(join(tmpdir(), 'expeed-check-'));
const devicesFile = join(dir, 'devices.json');
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let sim: Simulator;
let webhookPort: number;

beforeAll(async () => {
  db = await createTestDatabase('check');
  sim = await startSimulator({
    platformKey: 'pk-check',
    secretKey: 'sk-check-secret',
    devices: [{ id: 'c-1', key: 'key-c-1' }],
    from: Date.now() - 3_600_000,
    to: Date.now(),
    seed: 5,
  });
  writeFileSync(
    devicesFile,
    JSON.stringify([
      { id: 'c-1', key: 'device-key-one' },
      { id: 'c-2', key: 'device-key-two', name: 'Pump 2' },
    ]),
  );
  webhookPort = await freePort();
});

afterAll(async () => {
  await sim?.close();
  await db?.drop().catch(() => undefined);
  await deleteRedisPrefix(prefix);
  rmSync(dir, { recursive: true, force: true });
});

function baseEnv(): Record<string, string> {
  return {
    EXPEED_PREFIX: prefix,
    REDIS_URL,
    INFLUX_URL,
    INFLUX_BUCKET: db.name,
    EXPEED_DEVICES_FILE: devicesFile,
    WEBHOOK_PORT: String(webhookPort),
    EXPEED_BASE_URL: sim.url,
    EXPEED_PLATFORM_KEY: 'pk-check',
    EXPEED_SECRET_KEY: 'sk-check-secret',
    EXPEED_REDIS_CONNECT_TIMEOUT: '1s',
    EXPEED_REQUEST_TIMEOUT: '5s',
    LOG_LEVEL: 'silent',
  };
}

/** Runs `check` in this process over a context built from `env` as the CLI builds it. */
async function check(env: Record<string, string>, argv: string[] = []): Promise<{ code: number; lines: string[] }> {
  const ctx = createContext(env);
  const lines: string[] = [];
  ctx.out = (line) => lines.push(line);
  try {
    return { code: await command.run(argv, ctx), lines };
  } finally {
    await ctx.close();
  }
}

const line = (lines: string[], name: string) => lines.find((l) => l.slice(6).startsWith(name)) ?? '';

describe('expeed-sync check', () => {
  test('every dependency reachable: one ok line per check, exit 0, no secret shown', async () => {
    const { code, lines } = await check(baseEnv());
    expect(code).toBe(0);
    // the test Redis keeps nothing across a restart: a warning, not a failure
    expect(lines.map((l) => l.slice(0, 19))).toEqual([
      'ok    configuration',
      'ok    redis        ',
      'WARN  persistence  ',
      'ok    influxdb     ',
      'ok    devices file ',
      'ok    webhook port ',
      'all 6 checks passed',
    ]);
    expect(line(lines, 'persistence')).toBe(
      'WARN  persistence   NONE: a restart resets the checkpoints, the token count, the device registry and pushes not yet written; turn on AOF (appendonly yes), see docs/security.md',
    );
    expect(lines.at(-1)).toBe('all 6 checks passed (1 warning: WARN lines)');
    expect(line(lines, 'redis')).toMatch(/127\.0\.0\.1:6379 answers \(Redis \d+\.\d+\.\d+, single node\)$/);
    expect(line(lines, 'influxdb')).toContain(`InfluxDB 1.6.7`);
    expect(line(lines, 'influxdb')).toContain(
      `write API v1 (detected), database "${db.name}", retention policies: autogen forever (default)`,
    );
    expect(line(lines, 'devices file')).toBe(`ok    devices file  ${devicesFile}: 2 device(s)`);
    expect(line(lines, 'webhook port')).toBe(
      `ok    webhook port  127.0.0.1:${webhookPort} is free (pushes to /webhook)`,
    );
    expect(lines.join('\n')).not.toMatch(/sk-check-secret|device-key-one/);
    expect(sim.stats.tokenCalls).toBe(0);
  });

  test('--json: every check with its verdict', async () => {
    const { code, lines } = await check(baseEnv(), ['--json']);
    expect(code).toBe(0);
    const report = JSON.parse(lines.join('\n'));
    expect(report.ok).toBe(true);
    expect(report.failed).toBeNull();
    expect(report.checks.find((c: { name: string }) => c.name === 'persistence')).toMatchObject({
      ok: true,
      warning: true,
    });
    expect(report.checks.map((c: { name: string; ok: boolean }) => [c.name, c.ok])).toEqual([
      ['configuration', true],
      ['redis', true],
      ['persistence', true],
      ['influxdb', true],
      ['devices file', true],
      ['webhook port', true],
    ]);
  });

  test('a Redis with AOF and snapshots: the persistence line is ok, no warning', async () => {
    const persistent = await startRedisServer({ args: ['--appendonly', 'yes', '--save', '900 1'] });
    try {
      const { code, lines } = await check({ ...baseEnv(), REDIS_URL: persistent.url });
      expect(code).toBe(0);
      expect(line(lines, 'persistence')).toBe('ok    persistence   AOF and RDB snapshots');
      expect(lines.at(-1)).toBe('all 6 checks passed');
    } finally {
      await persistent.close();
    }
  });

  test('Redis down: the redis line fails, --platform is not tried, exit 1 naming redis', async () => {
    const port = await freePort();
    const { code, lines } = await check({ ...baseEnv(), REDIS_URL: `redis://:hunter2pass@127.0.0.1:${port}` }, [
      '--platform',
    ]);
    expect(code).toBe(1);
    expect(line(lines, 'redis')).toBe(`FAIL  redis         cannot reach Redis at 127.0.0.1:${port} (ECONNREFUSED)`);
    expect(line(lines, 'platform')).toBe(
      'FAIL  platform      not tried: the token budget lives in Redis, which did not answer',
    );
    expect(line(lines, 'influxdb')).toMatch(/^ok {4}influxdb/);
    expect(lines.at(-1)).toBe(`check failed: redis: cannot reach Redis at 127.0.0.1:${port} (ECONNREFUSED)`);
    expect(lines.join('\n')).not.toContain('hunter2pass');
  });

  test('InfluxDB down: the influxdb line names the address, exit 1', async () => {
    const port = await freePort();
    const { code, lines } = await check({ ...baseEnv(), INFLUX_URL: `http://127.0.0.1:${port}` });
    expect(code).toBe(1);
    expect(line(lines, 'influxdb')).toBe(
      `FAIL  influxdb      InfluxDB at http://127.0.0.1:${port} did not answer /ping: fetch failed`,
    );
    expect(line(lines, 'redis')).toMatch(/^ok {4}redis/);
    expect(lines.at(-1)).toBe(
      `check failed: influxdb: InfluxDB at http://127.0.0.1:${port} did not answer /ping: fetch failed`,
    );
  });

  test('a bad devices file: the entry and what is wrong with it, no key shown', async () => {
    const bad = join(dir, 'bad.json');
    writeFileSync(
      bad,
      JSON.stringify([
        { id: 'c-1', key: 'dup-key-secret' },
        { id: 'c-1', key: 'dup-key-secret' },
      ]),
    );
    const { code, lines } = await check({ ...baseEnv(), EXPEED_DEVICES_FILE: bad });
    expect(code).toBe(1);
    expect(line(lines, 'devices file')).toMatch(
      /^FAIL {2}devices file {2}.*bad\.json.*entry 2: device "c-1" is listed twice$/,
    );
    expect(lines.at(-1)).toMatch(/^check failed: devices file: .*listed twice$/);
    expect(lines.join('\n')).not.toContain('dup-key-secret');

    const broken = join(dir, 'broken.json');
    writeFileSync(broken, '[{"id": "c-1",');
    const second = await check({ ...baseEnv(), EXPEED_DEVICES_FILE: broken });
    expect(second.code).toBe(1);
    expect(line(second.lines, 'devices file')).toMatch(/broken\.json.*is not valid JSON/);
  });

  test('a taken webhook port: named with the variables to change', async () => {
    const holder: Server = createServer();
    await new Promise<void>((resolve) => holder.listen(webhookPort, '127.0.0.1', resolve));
    try {
      const { code, lines } = await check(baseEnv());
      expect(code).toBe(1);
      expect(line(lines, 'webhook port')).toBe(
        `FAIL  webhook port  127.0.0.1:${webhookPort} is taken (another process listens there; a running expeed-sync?); WEBHOOK_HOST, WEBHOOK_PORT`,
      );
      expect(lines.at(-1)).toMatch(/^check failed: webhook port: /);
    } finally {
      await new Promise((resolve) => holder.close(resolve));
    }
  });

  test('--platform: says it spends a token call first, then fetches one through the budget', async () => {
    const calls = sim.stats.tokenCalls;
    const { code, lines } = await check(baseEnv(), ['--platform']);
    expect(code).toBe(0);
    const notice = lines.findIndex((l) =>
      l.startsWith("platform: fetching a token spends one of today's 200 token calls"),
    );
    expect(notice).toBeGreaterThan(-1);
    expect(notice).toBeLessThan(lines.findIndex((l) => l.startsWith('ok    platform')));
    expect(line(lines, 'platform')).toBe(
      `ok    platform      ${sim.url} gave a token; 1 of 200 token calls used today`,
    );
    expect(sim.stats.tokenCalls).toBe(calls + 1);
    // the token is cached now: a second check says so and spends nothing
    const again = await check(baseEnv(), ['--platform']);
    expect(again.code).toBe(0);
    expect(again.lines.some((l) => l.startsWith('platform: a cached token is used'))).toBe(true);
    expect(sim.stats.tokenCalls).toBe(calls + 1);
  });

  test('--platform with bad credentials: the platform line fails with the vendor answer, the secret never shown', async () => {
    const other = testPrefix('check-bad');
    try {
      const { code, lines } = await check(
        { ...baseEnv(), EXPEED_PREFIX: other, EXPEED_SECRET_KEY: 'wrong-secret-value' },
        ['--platform'],
      );
      expect(code).toBe(1);
      expect(
        lines.some((l) =>
          l.startsWith("platform: fetching a token spends one of today's 200 token calls (0 used so far)"),
        ),
      ).toBe(true);
      expect(line(lines, 'platform')).toMatch(
        /^FAIL {2}platform {6}the platform rejected EXPEED_PLATFORM_KEY \/ EXPEED_SECRET_KEY \(endpoint token, result_code 1/,
      );
      expect(lines.at(-1)).toMatch(/^check failed: platform: /);
      expect(lines.join('\n')).not.toContain('wrong-secret-value');
    } finally {
      await deleteRedisPrefix(other);
    }
  });

  test('an invalid configuration is refused by the executable with its one-line reason', async () => {
    const r = await runCli(['check'], { ...baseEnv(), WEBHOOK_PORT: 'eighty' });
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toMatch(/^expeed-sync check: configuration error: .*WEBHOOK_PORT/);
    expect(r.stdout).toBe('');
  });
});
