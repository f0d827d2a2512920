/**
 * docker-compose.yml checked by Debian's docker-compose (no Docker engine needed): the file is
 * valid, the services and profiles are what the docs promise, every path it mounts or builds
 * exists in the repository, and every variable it uses is documented and read by the service.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { loadConfig } from '../../src/base/load-config.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url)).replace(/\/$/, '');
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');
const hasCompose = spawnSync('docker-compose', ['version'], { stdio: 'ignore' }).status === 0;
// CI installs it (scripts/test.sh): there a missing tool is a failure, not a skip
if (!hasCompose && process.env.CI)
  throw new Error('docker-compose is not installed: scripts/setup.sh with WITH_TEST_TOOLS=1 should have installed it');
if (!hasCompose) {
  console.warn(
    'compose.test.ts: docker-compose is not installed, skipping (scripts/test.sh installs it: WITH_TEST_TOOLS=1 bash scripts/setup.sh)',
  );
}

/** Variables src/base/load-config.ts reads: every call of its readers names one. */
const CONFIG_VARIABLES = [
  ...read('src/base/load-config.ts').matchAll(
    /\b(?:str|optional|int|bool|url|duration|timezone|cron|instant)\(env, '([A-Z0-9_]+)'/g,
  ),
].map((m) => m[1]);

type Service = {
  image?: string;
  build?: { context: string; dockerfile?: string };
  command?: string[];
  entrypoint?: string[];
  environment?: Record<string, string | number | null>;
  profiles?: string[];
  volumes?: Array<string | { type: string; source?: string; target: string }>;
  healthcheck?: { test?: string[] };
  depends_on?: Record<string, { condition?: string }>;
};

/** `.env.example` with every `# NAME=value` line uncommented: the values it documents. */
function documentedValues(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of read('.env.example').matchAll(/^#? ?([A-Z][A-Z0-9_]*)=(.*)$/gm)) out[m[1]] = m[2];
  return out;
}

test('.env.example documents the true defaults of src/base/load-config.ts', () => {
  const now = Date.UTC(2026, 0, 15, 12);
  const documented = Object.fromEntries(
    Object.entries(documentedValues()).filter(([k]) => CONFIG_VARIABLES.includes(k)),
  );
  expect(Object.keys(documented).sort()).toEqual([...new Set(CONFIG_VARIABLES)].sort());
  expect(loadConfig(documented, now)).toEqual(loadConfig({}, now));
});

describe.skipIf(!hasCompose)('docker-compose.yml', () => {
  let dir: string;
  let services: Record<string, Service>;
  /** `docker-compose config` under a clean environment and the given env file (no stray .env) */
  const config = (envFile: string, quiet = false) =>
    execFileSync(
      'docker-compose',
      [
        '--project-directory',
        ROOT,
        '-f',
        join(ROOT, 'docker-compose.yml'),
        '--env-file',
        envFile,
        'config',
        ...(quiet ? ['-q'] : []),
      ],
      {
        cwd: ROOT,
        env: { PATH: process.env.PATH, HOME: dir },
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'expeed-compose-'));
    writeFileSync(join(dir, 'empty.env'), '');
    services = parse(config(join(dir, 'empty.env'))).services;
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('is valid without any configuration, and with .env.example as .env', () => {
    expect(config(join(dir, 'empty.env'), true)).toBe('');
    expect(config(join(ROOT, '.env.example'), true)).toBe('');
  });

  test('has the services and profiles the docs describe', () => {
    expect(Object.keys(services).sort()).toEqual([
      'demo-worker',
      'grafana',
      'influxdb',
      'prometheus',
      'redis',
      'simulator',
      'worker',
    ]);
    expect(Object.fromEntries(Object.entries(services).map(([k, s]) => [k, s.profiles ?? []]))).toEqual({
      redis: [],
      influxdb: [],
      prometheus: [],
      grafana: [],
      worker: ['prod'],
      'demo-worker': ['demo'],
      simulator: ['demo'],
    });
  });

  test('Redis keeps an append-only file and never evicts keys', () => {
    expect(services.redis.command).toEqual(['redis-server', '--appendonly', 'yes', '--maxmemory-policy', 'noeviction']);
  });

  test('InfluxDB 2.x is initialised and maps an InfluxQL database to the bucket', () => {
    const influx = services.influxdb;
    expect(influx.image).toMatch(/^influxdb:2\./);
    expect(influx.environment).toMatchObject({
      DOCKER_INFLUXDB_INIT_MODE: 'setup',
      DOCKER_INFLUXDB_INIT_ORG: 'expeed',
      DOCKER_INFLUXDB_INIT_BUCKET: 'expeed',
      DOCKER_INFLUXDB_INIT_ADMIN_TOKEN: 'expeed-dev-token-change-me',
      EXPEED_DBRP_DATABASE: 'expeed',
    });
    expect(String(influx.environment?.DOCKER_INFLUXDB_INIT_PASSWORD).length).toBeGreaterThanOrEqual(8);
    expect(mounts('influxdb')).toContainEqual(['scripts/influxdb-init', '/docker-entrypoint-initdb.d']);
    const script = read('scripts/influxdb-init/dbrp.sh');
    expect(script).toMatch(
      /influx v1 dbrp create[^]*--db "\$db"[^]*--rp autogen[^]*--bucket-id "\$bucket_id"[^]*--default/,
    );
    expect(statSync(join(ROOT, 'scripts/influxdb-init/dbrp.sh')).mode & 0o111).not.toBe(0);
    expect(spawnSync('bash', ['-n', join(ROOT, 'scripts/influxdb-init/dbrp.sh')]).status).toBe(0);
  });

  test('Grafana gets the provisioning and dashboards, and every variable its data source reads', () => {
    expect(mounts('grafana')).toEqual(
      expect.arrayContaining([
        ['grafana/provisioning', '/etc/grafana/provisioning'],
        ['grafana/dashboards', '/var/lib/grafana/dashboards'],
      ]),
    );
    const datasource = read('grafana/provisioning/datasources/influxdb.yml');
    const used = [...datasource.replace(/^\s*#.*$/gm, '').matchAll(/\$\{?([A-Z][A-Z0-9_]*)/g)].map((m) => m[1]);
    expect(used.length).toBeGreaterThan(0);
    for (const v of used) expect(services.grafana.environment, `grafana lacks ${v}`).toHaveProperty(v);
    expect(services.grafana.environment).toMatchObject({
      EXPEED_GRAFANA_INFLUX_URL: 'http://influxdb:8086',
      EXPEED_GRAFANA_INFLUX_DB: 'expeed',
    });
    // the same token the worker writes with; the database is the bucket's DBRP name
    expect(services.grafana.environment?.EXPEED_GRAFANA_INFLUX_TOKEN).toBe(services.worker.environment?.INFLUX_TOKEN);
    expect(services.grafana.environment?.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH).toBe(
      '/var/lib/grafana/dashboards/expeed.json',
    );
    expect(existsSync(join(ROOT, 'grafana/dashboards/expeed.json'))).toBe(true);
    expect(services.grafana.environment?.EXPEED_GRAFANA_PROMETHEUS_URL).toBe('http://prometheus:9090');
  });

  test('Prometheus scrapes /metrics of both workers on the webhook port, and Grafana reads it', () => {
    expect(services.prometheus.image).toMatch(/^prom\/prometheus:v2\./);
    expect(mounts('prometheus')).toEqual(
      expect.arrayContaining([['prometheus/prometheus.yml', '/etc/prometheus/prometheus.yml']]),
    );
    expect(services.prometheus.command).toContain('--config.file=/etc/prometheus/prometheus.yml');
    const scrape = parse(read('prometheus/prometheus.yml')).scrape_configs as Array<{
      metrics_path?: string;
      static_configs: Array<{ targets: string[] }>;
    }>;
    expect(scrape.map((s) => s.metrics_path)).toEqual(['/metrics']);
    expect(scrape[0].static_configs.flatMap((c) => c.targets).sort()).toEqual(['demo-worker:8780', 'worker:8780']);
    for (const name of ['worker', 'demo-worker']) expect(services[name].environment?.WEBHOOK_PORT).toBe('8780');
    const datasource = parse(read('grafana/provisioning/datasources/prometheus.yml')).datasources[0];
    expect(datasource).toMatchObject({
      uid: 'expeed-prometheus',
      type: 'prometheus',
      url: '${EXPEED_GRAFANA_PROMETHEUS_URL}',
    });
    expect(services.grafana.depends_on).toHaveProperty('prometheus');
  });

  test('the worker is built from the Dockerfile, runs the service and is healthy on /readyz', () => {
    for (const name of ['worker', 'demo-worker', 'simulator']) {
      expect(services[name].build?.context).toBe(ROOT);
    }
    const dockerfile = read('Dockerfile');
    expect(dockerfile).toMatch(/^FROM node:20-slim$/m);
    expect(dockerfile).toMatch(/npm ci --omit=dev/);
    expect(dockerfile).toMatch(/^ENTRYPOINT \["node", "bin\/expeed-sync.js"\]$/m);
    expect(dockerfile).toMatch(/^CMD \["run"\]$/m);
    // tsx runs the sources at run time, so it must survive --omit=dev
    expect(JSON.parse(read('package.json')).dependencies).toHaveProperty('tsx');
    const ignored = read('.dockerignore')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    for (const needed of ['bin', 'src', 'package.json', 'package-lock.json']) {
      expect(existsSync(join(ROOT, needed))).toBe(true);
      expect(ignored).not.toContain(needed);
    }
    expect(ignored).toEqual(expect.arrayContaining(['node_modules', '.env', '.git']));
    for (const name of ['worker', 'demo-worker']) {
      expect(services[name].healthcheck?.test?.join(' ')).toContain("fetch('http://127.0.0.1:8780/readyz')");
      expect(services[name].environment).toMatchObject({
        WEBHOOK_HOST: '0.0.0.0',
        WEBHOOK_PORT: '8780',
        REDIS_URL: 'redis://redis:6379',
        INFLUX_URL: 'http://influxdb:8086',
      });
      expect(services[name].depends_on).toMatchObject({
        redis: { condition: 'service_healthy' },
        influxdb: { condition: 'service_healthy' },
      });
    }
  });

  test('production talks to the Expeed cloud; the demo to the simulator with its devices', () => {
    expect(services.worker.environment?.EXPEED_BASE_URL).toBe('https://api.iot-expeed.com');
    const demo = services['demo-worker'].environment ?? {};
    expect(demo.EXPEED_BASE_URL).toBe('http://simulator:8781');
    const args = services.simulator.command ?? [];
    expect(args[0]).toBe('simulate');
    const arg = (flag: string) => args[args.indexOf(flag) + 1];
    expect(arg('--port')).toBe('8781');
    expect([arg('--platform-key'), arg('--secret-key'), arg('--webhook-token')]).toEqual([
      demo.EXPEED_PLATFORM_KEY,
      demo.EXPEED_SECRET_KEY,
      demo.EXPEED_WEBHOOK_TOKEN,
    ]);
    expect(arg('--push-url')).toBe(`http://demo-worker:8780${demo.WEBHOOK_PATH}`);
    expect(services.simulator.environment?.EXPEED_TIMEZONE).toBe(demo.EXPEED_TIMEZONE);
    // every option given is one the simulate command accepts
    const accepted = /values: \[([^\]]*)\]/.exec(read('src/cli/commands/simulate.ts'))?.[1] ?? '';
    for (const flag of args.filter((a) => a.startsWith('--')))
      expect(accepted, `simulate has no ${flag}`).toContain(`'${flag.slice(2)}'`);
    expect(Number(arg('--days'))).toBe(Number.parseInt(String(demo.EXPEED_BACKFILL_START), 10));
    // the devices file holds exactly the devices the simulator generates (dev-0001/key-0001, ...)
    const mount = mounts('demo-worker').find(([, target]) => target === demo.EXPEED_DEVICES_FILE);
    expect(mount, 'EXPEED_DEVICES_FILE of the demo is mounted').toBeDefined();
    const devices = parse(read(mount![0])) as Array<{ id: string; key: string }>;
    const n = Number(arg('--devices'));
    expect(devices.map((d) => [d.id, d.key])).toEqual(
      Array.from({ length: n }, (_, i) => [
        `dev-${String(i + 1).padStart(4, '0')}`,
        `key-${String(i + 1).padStart(4, '0')}`,
      ]),
    );
  });

  test('every path it mounts exists in the repository', () => {
    let count = 0;
    for (const name of Object.keys(services)) {
      for (const [source] of mounts(name)) {
        if (source.startsWith('volume:')) continue;
        count++;
        expect(existsSync(join(ROOT, source)), `${name} mounts ${source}, which is not in the repository`).toBe(true);
      }
    }
    expect(count).toBe(5);
  });

  test('the worker gets every variable src/base/load-config.ts reads, and each is documented in .env.example', () => {
    expect(CONFIG_VARIABLES.length).toBeGreaterThan(30);
    const example = read('.env.example');
    for (const v of CONFIG_VARIABLES) {
      expect(services.worker.environment, `docker-compose.yml does not pass ${v} to the worker`).toHaveProperty(v);
      expect(example, `.env.example does not document ${v}`).toMatch(new RegExp(`^#? ?${v}=`, 'm'));
    }
    // with nothing configured, the worker runs on the service's defaults, except where it must
    // reach the other containers
    const now = Date.UTC(2026, 0, 15, 12);
    const env = Object.fromEntries(
      Object.entries(services.worker.environment ?? {}).map(([k, v]) => [k, v === null ? undefined : String(v)]),
    );
    const defaults = loadConfig({}, now);
    expect(loadConfig(env, now)).toEqual({
      ...defaults,
      redisUrl: 'redis://redis:6379',
      influx: {
        url: 'http://influxdb:8086',
        api: 'v2',
        bucket: 'expeed',
        org: 'expeed',
        token: 'expeed-dev-token-change-me',
        numericStrings: 'number',
      },
      webhook: { ...defaults.webhook, host: '0.0.0.0' },
    });
    // an unset schedule keeps its default; only an explicitly empty one disables it
    expect(services.worker.environment).toMatchObject({
      EXPEED_SCHEDULE_NIGHTLY: '0 2 * * *',
      EXPEED_SCHEDULE_STATUS: '*/5 * * * *',
      EXPEED_SCHEDULE_GAPS: '17 * * * *',
    });
  });

  test('every variable docker-compose.yml reads from the environment is documented in .env.example', () => {
    const used = new Set(
      [
        ...read('docker-compose.yml')
          .replace(/^\s*#.*$/gm, '')
          .matchAll(/\$\{([A-Z][A-Z0-9_]*)/g),
      ].map((m) => m[1]),
    );
    expect(used.size).toBeGreaterThan(30);
    const example = read('.env.example');
    for (const v of used) expect(example, `.env.example does not document ${v}`).toMatch(new RegExp(`^#? ?${v}=`, 'm'));
  });

  /** [source relative to the repo (or volume:NAME), target] of a service's mounts */
  function mounts(name: string): Array<[string, string]> {
    return (services[name].volumes ?? []).map((v) => {
      if (typeof v === 'string') {
        const [source, target] = v.split(':');
        return [source.startsWith('/') ? relative(ROOT, source) : `volume:${source}`, target];
      }
      return [v.type === 'bind' ? relative(ROOT, v.source ?? '') : `volume:${v.source}`, v.target];
    });
  }
});
