/**
 * No secret in any output: the service at debug level with every secret in play (platform key and
 * secret, the access token the simulator issued, registered and pushed device keys, the InfluxDB
 * password, the Redis password, the webhook token, the admin password), then everything an
 * operator or an unauthenticated caller can read — logs, /metrics, /readyz, status, devices,
 * token, dead letters (text and JSON) and the errors of failing commands — is searched for each.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Redis } from 'ioredis';
import { startSimulator, type Simulator } from '../../src/simulator/index.js';
import { runCli, startRun, type RunningService } from '../helpers/cli.js';
import { createTestDatabase, deleteRedisPrefix, freePort, REDIS_URL, testPrefix, until } from '../helpers/services.js';

const DAY = 86_400_000;
const prefix = testPrefix('secrets');
const to = Math.floor(Date.now() / 60_000) * 60_000 - 2 * DAY;
const from = to - DAY;
const REDIS_PASSWORD = 'sio-redis-pw-1';
const INFLUX_PASSWORD = 'sio-influx-pw-1';
const PUSHED_KEY = 'sio-pushed-key-1';
const DEAD_KEY = 'sio-dead-key-1';
let sim: Simulator;
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let port: number;
let env: Record<string, string>;
let run: RunningService | undefined;
const redis = new Redis(REDIS_URL);

beforeAll(async () => {
  db = await createTestDatabase('secrets');
  sim = await startSimulator({
    platformKey: 'sio-platform-key-1',
    secretKey: 'sio-secret-key-1',
    devices: 1,
    from,
    to,
    seed: 11,
  });
  port = await freePort();
  const url = new URL(REDIS_URL);
  url.password = REDIS_PASSWORD; // our Redis has none: it accepts the AUTH and ignores it
  env = {
    EXPEED_BASE_URL: sim.url,
    EXPEED_PLATFORM_KEY: 'sio-platform-key-1',
    EXPEED_SECRET_KEY: 'sio-secret-key-1',
    EXPEED_WEBHOOK_TOKEN: 'sio-webhook-token-1',
    EXPEED_PREFIX: prefix,
    REDIS_URL: url.toString(),
    INFLUX_URL: db.url,
    INFLUX_BUCKET: db.name,
    INFLUX_API: 'v1',
    INFLUX_TOKEN: `sio-user:${INFLUX_PASSWORD}`,
    WEBHOOK_PORT: String(port),
    EXPEED_BACKFILL_START: new Date(from).toISOString(),
    EXPEED_SCHEDULE_NIGHTLY: '',
    EXPEED_SCHEDULE_GAPS: '',
    ADMIN_USER: 'ops',
    ADMIN_PASSWORD: 'sio-admin-pw-1',
    LOG_LEVEL: 'debug',
  };
  const added = await runCli(['devices', 'add', sim.devices[0].id, '--key', sim.devices[0].key], env);
  expect(added.code).toBe(0);
});

afterAll(async () => {
  if (run && run.child.exitCode === null) run.child.kill('SIGKILL');
  await sim?.close();
  await db?.drop();
  await deleteRedisPrefix(prefix);
  redis.disconnect();
});

const post = (body: string) =>
  fetch(`http://127.0.0.1:${port}/webhook`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });

describe('secrets in outputs', () => {
  test('no output of the service or the CLI carries a secret', async () => {
    run = startRun(env);
    await until('readiness', async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200, {
      detail: () => run!.stderr(),
    });
    // the first sync fetched a token: the secret the platform issued
    const accessToken = await until('an access token', async () => redis.hget(`${prefix}:token:current`, 'token'));

    const ok = await post(
      JSON.stringify({
        msg_type: 2,
        device_id: 'sio-push-dev',
        device_key: PUSHED_KEY,
        data: [{ timestamp: '2017-02-13T12-00-00-000', t: 1 }],
      }),
    );
    expect(ok.status).toBe(200);
    // a body cut short: kept as a dead letter, raw, with the key in it
    const bad = await post(`{"msg_type":2,"device_id":"sio-dead-dev","device_key":"${DEAD_KEY}","data":[{"timest`);
    expect(bad.status).toBeGreaterThanOrEqual(400);
    await until('the dead letter', async () => (await redis.keys(`${prefix}:dead*`)).length > 0);

    const outputs: Record<string, string> = {};
    outputs['/metrics'] = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    outputs['/readyz'] = await (await fetch(`http://127.0.0.1:${port}/readyz`)).text();
    for (const args of [
      ['status'],
      ['status', '--json'],
      ['devices', 'list'],
      ['devices', 'list', '--json'],
      ['token'],
      ['dead-letters', 'list'],
      ['dead-letters', 'list', '--json'],
    ]) {
      const r = await runCli(args, env);
      outputs[args.join(' ')] = r.stdout + r.stderr;
    }
    // failing commands: unreachable Redis with its password, InfluxDB credentials in the URL
    const unreachable = await runCli(['status'], {
      ...env,
      REDIS_URL: `redis://:${REDIS_PASSWORD}@127.0.0.1:1`,
      EXPEED_REDIS_CONNECT_TIMEOUT: '1s',
    });
    expect(unreachable.code).toBe(1);
    outputs['status (Redis unreachable)'] = unreachable.stderr;
    const influxInUrl = await runCli(['status'], {
      ...env,
      INFLUX_URL: `http://sio-user:${INFLUX_PASSWORD}@127.0.0.1:8086`,
    });
    expect(influxInUrl.code).toBe(1);
    outputs['status (credentials in INFLUX_URL)'] = influxInUrl.stderr;

    run.child.kill('SIGTERM');
    expect((await run.exited).code).toBe(0);
    outputs['run log (debug)'] = run.stderr();

    // the outputs hold what they should (the search below is not vacuous)
    expect(outputs['dead-letters list --json']).toContain('sio-dead-dev');
    expect(outputs['dead-letters list --json']).toContain('"device_key\\":\\"[REDACTED]');
    expect(outputs['dead-letters list']).toContain('[REDACTED]');
    expect(outputs['devices list']).toContain(sim.devices[0].id);
    expect(outputs['run log (debug)']).toContain('webhook listening');
    expect(outputs['status (Redis unreachable)']).toContain('cannot reach Redis at 127.0.0.1:1');
    expect(outputs['status (credentials in INFLUX_URL)']).toContain('INFLUX_TOKEN');

    const secrets = {
      'platform key': 'sio-platform-key-1',
      'secret key': 'sio-secret-key-1',
      'access token': accessToken,
      'registered device key': sim.devices[0].key,
      'pushed device key': PUSHED_KEY,
      'device key in a dead letter': DEAD_KEY,
      'InfluxDB password': INFLUX_PASSWORD,
      'Redis password': REDIS_PASSWORD,
      'webhook token': 'sio-webhook-token-1',
      'admin password': 'sio-admin-pw-1',
    };
    const leaks: string[] = [];
    for (const [where, text] of Object.entries(outputs)) {
      for (const [what, value] of Object.entries(secrets)) if (text.includes(value)) leaks.push(`${what} in ${where}`);
    }
    expect(leaks).toEqual([]);
    // a service start, a first sync and eleven CLI runs: over the default 60 s on a loaded machine
  }, 180_000);
});
