/**
 * Real services for tests: each test file gets its own Redis prefix and its own InfluxDB
 * database, and can start private servers (influxd, redis-server, victoria-metrics) on free ports
 * for outage tests. Nothing here mocks Redis, BullMQ or InfluxDB.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Cluster, Redis } from 'ioredis';
import type { ClusterNode } from '../../src/base/redis.js';

export const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
export const INFLUX_URL = process.env.TEST_INFLUX_URL ?? 'http://127.0.0.1:8086';

export function randomName(stem: string): string {
  return `${stem}_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
}

/** A unique EXPEED_PREFIX for one test (file), and a cleanup that deletes every key under it. */
export function testPrefix(stem = 'test'): string {
  return randomName(`t${stem}`).replace(/_/g, '-');
}

/**
 * The test Redis Cluster (scripts/setup.sh with WITH_TEST_TOOLS=1 starts three masters). Tests
 * against it skip when it does not answer, and fail instead in CI, where setup.sh must have started it.
 */
export const TEST_CLUSTER_NODES =
  process.env.TEST_REDIS_CLUSTER_NODES ?? '127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003';

export function clusterNodes(spec = TEST_CLUSTER_NODES): ClusterNode[] {
  return spec.split(',').map((n) => {
    const [host, port] = n.trim().split(':');
    return { host, port: Number(port) };
  });
}

/** Whether the test cluster answers with `cluster_state:ok`. */
export async function hasRedisCluster(spec = TEST_CLUSTER_NODES): Promise<boolean> {
  const { host, port } = clusterNodes(spec)[0];
  const r = new Redis(port, host, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  r.on('error', () => undefined);
  try {
    await r.connect();
    return /cluster_state:ok/.test(await r.cluster('INFO'));
  } catch {
    return false;
  } finally {
    r.disconnect();
  }
}

/** Deletes every key under `prefix` on one Redis (a URL) or on every master of a cluster (its nodes). */
export async function deleteRedisPrefix(prefix: string, url: string | ClusterNode[] = REDIS_URL): Promise<number> {
  if (typeof url !== 'string') {
    const cluster = new Cluster(url, { lazyConnect: true });
    await cluster.connect();
    try {
      let deleted = 0;
      // each key on its own: the keys of one master may still span slots (a prefix without a hash tag)
      for (const node of cluster.nodes('master'))
        deleted += await deleteMatching(node, prefix, (keys) =>
          Promise.all(keys.map((k) => cluster.del(k))).then((n) => n.reduce((a, b) => a + b, 0)),
        );
      return deleted;
    } finally {
      cluster.disconnect();
    }
  }
  const redis = new Redis(url, { maxRetriesPerRequest: 1, lazyConnect: true });
  await redis.connect();
  try {
    return await deleteMatching(redis, prefix, (keys) => redis.del(...keys));
  } finally {
    redis.disconnect();
  }
}

async function deleteMatching(node: Redis, prefix: string, del: (keys: string[]) => Promise<number>): Promise<number> {
  let deleted = 0;
  let cursor = '0';
  do {
    // SCAN MATCH treats braces literally but brackets as a class: escape what glob would read
    const [next, keys] = await node.scan(cursor, 'MATCH', `${prefix.replace(/[*?[\]\\]/g, '\\$&')}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length) deleted += await del(keys);
  } while (cursor !== '0');
  return deleted;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** InfluxQL against a 1.x server; returns the `series` of the first statement. */
export async function influxQuery(
  db: string,
  q: string,
  url = INFLUX_URL,
): Promise<Array<{ name: string; tags?: Record<string, string>; columns: string[]; values: unknown[][] }>> {
  const res = await fetch(`${url}/query?${new URLSearchParams({ db, q, epoch: 'ms' })}`, { method: 'POST' });
  const body = (await res.json()) as { results?: Array<{ series?: never[]; error?: string }>; error?: string };
  if (!res.ok || body.error)
    throw new Error(`InfluxQL failed (${res.status}): ${body.error ?? JSON.stringify(body)}: ${q}`);
  const first = body.results?.[0];
  if (first?.error) throw new Error(`InfluxQL error: ${first.error}: ${q}`);
  return first?.series ?? [];
}

/** Rows of a query as objects keyed by column (tags merged in). */
export async function influxRows(db: string, q: string, url = INFLUX_URL): Promise<Array<Record<string, unknown>>> {
  const series = await influxQuery(db, q, url);
  return series.flatMap((s) =>
    s.values.map((v) => ({ ...(s.tags ?? {}), ...Object.fromEntries(s.columns.map((c, i) => [c, v[i]])) })),
  );
}

/** A fresh InfluxDB 1.x database for one test file; `drop()` removes it. */
export async function createTestDatabase(
  stem = 'test',
  url = INFLUX_URL,
): Promise<{ name: string; url: string; drop(): Promise<void> }> {
  const name = randomName(stem);
  await influxQuery(name, `CREATE DATABASE "${name}"`, url);
  return {
    name,
    url,
    drop: async () => {
      await influxQuery(name, `DROP DATABASE "${name}"`, url);
    },
  };
}

/**
 * The tests' one wait for a condition: polls `fn` until it returns a truthy value, which it
 * resolves to. An error thrown by `fn` counts as "not yet" (a server still starting refuses
 * connections) and the last one is named on timeout — unless `errors: 'throw'`, when it ends the wait.
 */
export async function until<T>(
  what: string,
  fn: () => Promise<T | undefined | false | null>,
  options: { timeoutMs?: number; intervalMs?: number; detail?: () => string; errors?: 'retry' | 'throw' } = {},
): Promise<T> {
  const { timeoutMs = 60_000, intervalMs = 200 } = options;
  const end = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    const v = await fn().catch((err: unknown) => {
      if (options.errors === 'throw') throw err;
      lastError = err;
      return undefined;
    });
    if (v) return v;
    if (Date.now() > end) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${String(lastError)}` : ''}${options.detail ? `\n${options.detail()}` : ''}`,
      );
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Polls `probe` until `check` holds for its value, which it resolves to; the last value is named on timeout. */
export async function untilValue<T>(
  what: string,
  probe: () => Promise<T>,
  check: (v: T) => boolean,
  options: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  let last: T | undefined;
  const found = await until(what, async () => ((last = await probe()), check(last) ? { value: last } : undefined), {
    ...options,
    errors: 'throw',
    detail: () => `last value: ${JSON.stringify(last)?.slice(0, 500)}`,
  });
  return found.value;
}

export interface ChildServer {
  url: string;
  port: number;
  process: ChildProcess;
  /** SIGKILL (an outage), keeps the data folder */
  kill(): Promise<void>;
  /** starts it again on the same port and data */
  start(): Promise<void>;
  /** kill and delete the data */
  close(): Promise<void>;
}

function childServer(
  name: string,
  port: number,
  url: string,
  dir: string,
  cmd: string,
  args: string[],
  ready: () => Promise<boolean>,
): Promise<ChildServer> {
  let proc: ChildProcess;
  const start = async () => {
    proc = spawn(cmd, args, { stdio: 'ignore', detached: false });
    server.process = proc;
    await until(`${name} to come up`, ready, { timeoutMs: 20_000, intervalMs: 100 });
  };
  const kill = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGKILL');
    await exited;
  };
  const server: ChildServer = {
    url,
    port,
    process: undefined as unknown as ChildProcess,
    kill,
    start,
    close: async () => {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return start().then(() => server);
}

/** A private influxd 1.x on a free port (for outage tests). */
export async function startInfluxd(): Promise<ChildServer> {
  const port = await freePort();
  const rpc = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'expeed-influxd-'));
  writeFileSync(
    join(dir, 'influxdb.conf'),
    `reporting-enabled = false
bind-address = "127.0.0.1:${rpc}"
[meta]
  dir = "${dir}/meta"
[data]
  dir = "${dir}/data"
  wal-dir = "${dir}/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:${port}"
  log-enabled = false
[monitor]
  store-enabled = false
`,
  );
  const url = `http://127.0.0.1:${port}`;
  return childServer(
    'influxd',
    port,
    url,
    dir,
    'influxd',
    ['-config', join(dir, 'influxdb.conf')],
    async () => (await fetch(`${url}/ping`)).status === 204,
  );
}

/**
 * A private redis-server on a free port, no persistence (for outage tests); `password` sets
 * requirepass (the URL carries it), `args` are passed on (e.g. cluster mode).
 */
export async function startRedisServer(options: { password?: string; args?: string[] } = {}): Promise<ChildServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'expeed-redis-'));
  const url = `redis://${options.password ? `:${options.password}@` : ''}127.0.0.1:${port}`;
  return childServer(
    'redis-server',
    port,
    url,
    dir,
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      dir,
      ...(options.password ? ['--requirepass', options.password] : []),
      ...(options.args ?? []),
    ],
    async () => {
      const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      r.on('error', () => undefined); // "not up yet" is the rejected connect(), not an unhandled event
      try {
        await r.connect();
        return (await r.ping()) === 'PONG';
      } finally {
        r.disconnect();
      }
    },
  );
}

/** VictoriaMetrics: a real server that accepts line protocol on the InfluxDB 2.x `/api/v2/write` path. */
export async function startVictoriaMetrics(): Promise<ChildServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'expeed-vm-'));
  const url = `http://127.0.0.1:${port}`;
  return childServer(
    'victoria-metrics',
    port,
    url,
    dir,
    'victoria-metrics',
    [
      `-httpListenAddr=127.0.0.1:${port}`,
      `-storageDataPath=${dir}`,
      '-retentionPeriod=100y',
      '-search.disableCache',
      '-loggerLevel=ERROR',
    ],
    async () => (await fetch(`${url}/health`)).ok,
  );
}
