/**
 * The checks of `expeed-sync check`: each reaches one dependency the way the service does and
 * answers with one line (what it found, or why it failed). None of them writes anything: the
 * database is reported, not created, and the webhook's port is bound and released at once.
 */
import { createServer } from 'node:net';
import type { Config } from '../base/config.js';
import { isCluster, redisAddress, waitForRedis, type RedisConnection } from '../base/redis.js';
import { readDevicesFile } from '../devices/registry.js';
import { detectInfluxApi, type WriteApiVersion } from '../influx/api-detect.js';
import { createInfluxQuery, influxIdent } from '../influx/query.js';
import { authHeaders } from '../influx/write-request.js';
import { tokenBudgetFromConfig } from '../platform/token/budget-config.js';
import type { SecretScrubber } from '../base/secrets.js';
import { describePersistence, readPersistence } from '../ops/redis-persistence.js';

export interface CheckResult {
  name: string;
  ok: boolean;
  /** what was found (ok) or what is wrong (failed), one line */
  detail: string;
  /** passed, but something the operator should know (shown as WARN, the exit stays 0) */
  warning?: boolean;
}

async function outcome(name: string, run: () => Promise<string>): Promise<CheckResult> {
  try {
    return { name, ok: true, detail: await run() };
  } catch (err) {
    return { name, ok: false, detail: (err instanceof Error ? err.message : String(err)).split('\n')[0] };
  }
}

/** The configuration itself was read and validated before any check ran; this line says what it names. */
export function checkConfiguration(config: Config): CheckResult {
  const credentials =
    config.platformKey && config.secretKey
      ? 'platform credentials set'
      : 'no platform credentials (EXPEED_PLATFORM_KEY, EXPEED_SECRET_KEY)';
  const webhook = config.webhook.token
    ? 'webhook token set'
    : 'no EXPEED_WEBHOOK_TOKEN (the handshake cannot be verified)';
  return {
    name: 'configuration',
    ok: true,
    detail: `valid; platform ${config.baseUrl}, prefix "${config.prefix}", ${credentials}, ${webhook}`,
  };
}

/** PING within EXPEED_REDIS_CONNECT_TIMEOUT, then the server's version (and the cluster's state). */
export function checkRedis(config: Config, redis: RedisConnection): Promise<CheckResult> {
  return outcome('redis', async () => {
    const address = redisAddress(config);
    await waitForRedis(redis, address, config.redisConnectTimeoutMs);
    const node = isCluster(redis) ? redis.nodes('master')[0] : redis;
    const info = node ? String(await node.info('server')) : '';
    const version = /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown version';
    if (!isCluster(redis)) return `${address} answers (Redis ${version}, single node)`;
    const state = /cluster_state:(\S+)/.exec(String(await redis.cluster('INFO')))?.[1] ?? 'unknown';
    if (state !== 'ok') throw new Error(`Redis Cluster at ${address} answers but its state is "${state}"`);
    return `${address} answers (Redis ${version}, cluster of ${redis.nodes('master').length} masters, state ok, prefix "${config.prefix}")`;
  });
}

/**
 * Redis's persistence mode (AOF, RDB snapshots, both; read from every master of a cluster). None
 * at all is a warning, not a failure: the service runs, but a restart of Redis loses what it keeps.
 */
export function checkPersistence(redis: RedisConnection): Promise<CheckResult> {
  return outcome('persistence', async () => describePersistence(await readPersistence(redis))).then((r) =>
    r.ok && r.detail.startsWith('NONE')
      ? { ...r, warning: true, detail: `${r.detail}; turn on AOF (appendonly yes), see docs/security.md` }
      : r,
  );
}

/** Version and write API, then the database (1.x) or bucket (2.x+) and its retention. */
export function checkInflux(config: Config): Promise<CheckResult> {
  return outcome('influxdb', async () => {
    const { url, bucket, token, org } = config.influx;
    const signal = AbortSignal.timeout(config.requestTimeoutMs);
    const detected = await detectInfluxApi({
      url,
      signal,
      headers: authHeaders({ api: 'v2', token: token?.includes(':') ? undefined : token }),
    });
    const api: WriteApiVersion = config.influx.api === 'auto' ? detected.api : config.influx.api;
    const head = `${url} InfluxDB ${detected.version ?? '(version not reported)'}, write API ${api}${config.influx.api === 'auto' ? ' (detected)' : ''}`;
    if (api === 'v2') return `${head}, ${await describeBucket(url, bucket, org, token, signal)}`;
    const query = createInfluxQuery({ url, api, bucket, token, timeoutMs: config.requestTimeoutMs });
    // an empty answer is a series without `values` on 1.x
    const rows = async (q: string) =>
      (await query.series(q)).flatMap((s) =>
        (s.values ?? []).map((v) => Object.fromEntries(s.columns.map((c, i) => [c, v[i]]))),
      );
    const databases = (await rows('SHOW DATABASES')).map((r) => r.name);
    if (!databases.includes(bucket))
      return `${head}, database "${bucket}" does not exist yet (the service creates it at start)`;
    const rps = await rows(`SHOW RETENTION POLICIES ON ${influxIdent(bucket)}`);
    const list = rps.map(
      (r) =>
        `${String(r.name)} ${r.duration === '0s' ? 'forever' : String(r.duration)}${r.default ? ' (default)' : ''}`,
    );
    return `${head}, database "${bucket}", retention policies: ${list.join(', ') || 'none'}`;
  });
}

async function describeBucket(
  url: string,
  bucket: string,
  org: string | undefined,
  token: string | undefined,
  signal: AbortSignal,
): Promise<string> {
  const params = new URLSearchParams({ name: bucket });
  if (org) params.set('org', org);
  let res: Response;
  try {
    res = await fetch(`${url}/api/v2/buckets?${params}`, { headers: authHeaders({ api: 'v2', token }), signal });
  } catch (err) {
    throw new Error(`InfluxDB at ${url} did not answer /api/v2/buckets: ${(err as Error).message}`);
  }
  const text = await res.text();
  if (res.status === 401 || res.status === 403)
    throw new Error(`InfluxDB at ${url} refused INFLUX_TOKEN (HTTP ${res.status}) listing buckets`);
  if (!res.ok)
    throw new Error(`InfluxDB at ${url} answered /api/v2/buckets with HTTP ${res.status}: ${text.slice(0, 200)}`);
  const found = (
    JSON.parse(text) as { buckets?: Array<{ name: string; retentionRules?: Array<{ everySeconds?: number }> }> }
  ).buckets?.find((b) => b.name === bucket);
  if (!found)
    throw new Error(
      `bucket "${bucket}" does not exist${org ? ` in org "${org}"` : ''} (INFLUX_BUCKET; create it, the service does not)`,
    );
  const every = found.retentionRules?.[0]?.everySeconds ?? 0;
  return `bucket "${bucket}", retention ${every > 0 ? `${every} s` : 'forever'}`;
}

/** EXPEED_DEVICES_FILE read and validated as the service merges it; its keys become secrets of `scrubber`. */
export function checkDevicesFile(config: Config, scrubber: SecretScrubber): Promise<CheckResult> {
  return outcome('devices file', async () => {
    if (!config.devicesFile) return 'none (EXPEED_DEVICES_FILE not set; devices come from the registry and pushes)';
    const devices = await readDevicesFile(config.devicesFile);
    for (const d of devices) scrubber.add(d.key);
    return `${config.devicesFile}: ${devices.length} device(s)`;
  });
}

/** The webhook's host and port can be bound (and are released again at once). */
export function checkWebhookPort(config: Config): Promise<CheckResult> {
  const { host, port, path } = config.webhook;
  return outcome('webhook port', () => {
    const server = createServer();
    return new Promise<string>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => {
        const why =
          err.code === 'EADDRINUSE'
            ? 'is taken (another process listens there; a running expeed-sync?)'
            : `cannot be bound (${err.code ?? err.message})`;
        reject(new Error(`${host}:${port} ${why}; WEBHOOK_HOST, WEBHOOK_PORT`));
      });
      server.listen({ host, port, exclusive: true }, () =>
        server.close(() => resolve(`${host}:${port} is free (pushes to ${path})`)),
      );
    });
  });
}

/**
 * One token through the shared budget (it counts against the day, from the reserve kept for
 * commands run by hand). `say` is told first, with the count, before any call is made.
 */
export function checkPlatform(
  config: Config,
  redis: RedisConnection,
  scrubber: SecretScrubber,
  say: (line: string) => void,
): Promise<CheckResult> {
  return outcome('platform', async () => {
    if (!config.platformKey || !config.secretKey)
      throw new Error('EXPEED_PLATFORM_KEY and EXPEED_SECRET_KEY are not set');
    const budget = tokenBudgetFromConfig(config, redis, { scrubber });
    try {
      const before = await budget.usage();
      if (before.tokenExpiresAt !== undefined && before.tokenExpiresAt > Date.now()) {
        say(
          `platform: a cached token is used (it is valid until ${new Date(before.tokenExpiresAt).toISOString()}): no token call is spent`,
        );
      } else {
        say(
          `platform: fetching a token spends one of today's ${before.limit} token calls (${before.calls} used so far)`,
        );
      }
      await budget.get({ useReserve: true });
      const after = await budget.usage();
      return `${config.baseUrl} gave a token; ${after.calls} of ${after.limit} token calls used today`;
    } finally {
      await budget.close();
    }
  });
}
