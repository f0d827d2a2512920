/**
 * The container image, built from the Dockerfile as it is and run as an operator runs it: the
 * service in demo mode (the built-in simulator, no credentials) against the test Redis (its own
 * EXPEED_PREFIX) and InfluxDB (its own database), on the host's network. Rows land for every demo
 * device, /readyz answers 200 on the container's port and the image's HEALTHCHECK passes, the
 * process runs as `node` (uid 1000), and SIGTERM (`podman stop`) ends it with exit 0 and the
 * service's own shutdown lines. With podman, as test/helpers/podman.ts describes; the base image
 * is pulled or made by scripts/node-standin-image.sh (cached), and the times are printed.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  createTestDatabase,
  deleteRedisPrefix,
  freePort,
  INFLUX_URL,
  influxRows,
  randomName,
  REDIS_URL,
  testPrefix,
  until,
} from '../helpers/services.js';
import {
  buildImage,
  IMAGE_LABEL,
  missingTools,
  podman,
  podmanOk,
  prepareBaseImage,
  RUN_LIMITS,
} from '../helpers/podman.js';

const missing = missingTools();
// CI installs them (scripts/test.sh): there a missing tool is a failure, not a skip
if (missing.length && process.env.CI)
  throw new Error(
    `${missing.join(', ')} not installed: scripts/setup.sh with WITH_TEST_TOOLS=1 should have installed it`,
  );
if (missing.length)
  console.warn(
    `image.test.ts: ${missing.join(', ')} not installed, skipping (scripts/test.sh installs them: WITH_TEST_TOOLS=1 bash scripts/setup.sh)`,
  );

const DEMO_DEVICES = ['dev-0001', 'dev-0002', 'dev-0003', 'dev-0004', 'dev-0005'];
const seconds = (fromMs: number) => ((performance.now() - fromMs) / 1000).toFixed(1);

/** The service's log records (pino JSON lines) among what the container printed. */
function records(text: string): Array<Record<string, unknown>> {
  return text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe.skipIf(missing.length > 0)('the container image (podman)', () => {
  const name = randomName('expeed-image');
  const prefix = testPrefix('image');
  let db: Awaited<ReturnType<typeof createTestDatabase>> | undefined;
  let port: number;
  let started = false;
  /** what the container printed (stdout and stderr) */
  const logs = async () => {
    const r = await podman(['logs', name]);
    return r.stdout + r.stderr;
  };

  beforeAll(async () => {
    const t0 = performance.now();
    const base = await prepareBaseImage(240_000);
    const t1 = performance.now();
    const image = await buildImage(300_000);
    const t2 = performance.now();
    db = await createTestDatabase('image');
    port = await freePort();
    const env = {
      REDIS_URL,
      INFLUX_URL,
      INFLUX_API: 'v1',
      INFLUX_BUCKET: db.name,
      EXPEED_PREFIX: prefix,
      // the host's network: the webhook on loopback only, on a free port
      WEBHOOK_HOST: '127.0.0.1',
      WEBHOOK_PORT: String(port),
      // two days of the demo's history: the first sync ends in seconds
      EXPEED_BACKFILL_START: '2d',
    };
    const envArgs = Object.entries(env).flatMap(([k, v]) => ['-e', `${k}=${v}`]);
    // the healthcheck is run by hand below: no systemd here for podman's timer
    await podmanOk([
      'run',
      '-d',
      '--name',
      name,
      '--network=host',
      ...RUN_LIMITS,
      '--health-interval',
      'disable',
      ...envArgs,
      image,
    ]);
    started = true;
    let last = '';
    await until(
      "the demo's first sync in the container",
      async () => {
        last = await logs();
        return /first sync finished/.test(last);
      },
      { timeoutMs: 180_000, intervalMs: 1000, detail: () => last.slice(-3000) },
    );
    console.log(
      `image.test: base image ${((t1 - t0) / 1000).toFixed(1)} s [${base.split('\n').pop()}]; build ${((t2 - t1) / 1000).toFixed(1)} s; run to the end of the first sync ${seconds(t2)} s (image ${image.slice(0, 12)})`,
    );
  }, 600_000);

  afterAll(async () => {
    if (started) await podman(['rm', '-f', '-t', '0', name]);
    // earlier builds of this test that nothing uses any more (the layer cache stays)
    await podman(['image', 'prune', '-f', '--filter', `label=${IMAGE_LABEL}`, '--filter', 'until=1h']);
    await deleteRedisPrefix(prefix);
    await db?.drop();
  }, 120_000);

  test('the first sync wrote rows for every demo device into InfluxDB', async () => {
    const log = await logs();
    expect(log).toMatch(/first sync finished: the history is in InfluxDB\./);
    expect(log).toMatch(/backfill: 5\/5 devices done/);
    const rows = await influxRows(db!.name, 'SELECT count(*) FROM "device_data" GROUP BY "device_id"');
    const perDevice: Record<string, number> = Object.fromEntries(
      rows.map((r) => [
        r.device_id,
        Object.entries(r).reduce((n, [k, v]) => n + (k.startsWith('count_') && typeof v === 'number' ? v : 0), 0),
      ]),
    );
    expect(Object.keys(perDevice).sort()).toEqual(DEMO_DEVICES);
    for (const id of DEMO_DEVICES) expect(perDevice[id], id).toBeGreaterThan(0);
    console.log(
      `image.test: ${Object.values(perDevice).reduce((a, b) => a + b, 0)} points landed for ${DEMO_DEVICES.length} devices`,
    );
  });

  test("/readyz answers 200 on the container's port, and the image's HEALTHCHECK passes", async () => {
    const res = await fetch(`http://127.0.0.1:${port}/readyz`);
    const body = (await res.json()) as { status: string; checks: Record<string, string> };
    expect(res.status).toBe(200);
    expect(body.status).toBe('ready');
    expect(body.checks).toMatchObject({ redis: 'ok', influxdb: 'ok' });
    // --format docker keeps HEALTHCHECK in the image; `podman healthcheck run` runs it in the container
    const check = JSON.parse(
      await podmanOk(['inspect', '--format', '{{json .Config.Healthcheck.Test}}', name]),
    ) as string[];
    expect(check.join(' ')).toContain('/readyz');
    const run = await podman(['healthcheck', 'run', name]);
    expect({ code: run.code, out: run.stdout.trim() }).toEqual({ code: 0, out: '' });
  });

  test("the service runs as the image's user `node` (uid 1000)", async () => {
    expect((await podmanOk(['exec', name, 'id', '-u'])).trim()).toBe('1000');
    const top = (await podmanOk(['top', name, 'user', 'args'])).trim().split('\n');
    expect(top.slice(1).map((l) => l.trim().split(/\s+/).slice(0, 4).join(' '))).toEqual([
      'node node bin/expeed-sync.js run',
    ]);
  });

  test('SIGTERM stops it with exit 0 after the service says it shut down', async () => {
    const t = performance.now();
    const stop = await podman(['stop', '-t', '30', name], 60_000);
    expect(stop.code).toBe(0);
    console.log(`image.test: podman stop took ${seconds(t)} s`);
    const state = JSON.parse(await podmanOk(['inspect', '--format', '{{json .State}}', name])) as {
      ExitCode: number;
      Status: string;
    };
    expect({ status: state.Status, exitCode: state.ExitCode }).toEqual({ status: 'exited', exitCode: 0 });
    const msgs = records(await logs()).map((r) => [r.msg, r.signal ?? null]);
    expect(msgs).toContainEqual([
      'shutting down: no new requests or jobs; running jobs finish or stop at a checkpoint',
      'SIGTERM',
    ]);
    expect(msgs.at(-1)).toEqual(['stopped', null]);
    expect(msgs.map(([m]) => m)).not.toContain('second signal: exiting at once');
  });
});
