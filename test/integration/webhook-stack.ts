/**
 * The push path wired for integration tests exactly as the service wires it: the webhook
 * (Fastify) enqueueing into real Redis, the ingest worker writing through the real InfluxDB
 * writer, the platform simulator pushing for real. Each stack has its own Redis prefix and its
 * own InfluxDB database, and `close()` removes both.
 */
import type { WebhookConfig } from '../../src/base/config.js';
import { RedisDeadLetterStore } from '../../src/dead-letters/store.js';
import { DeviceRegistry } from '../../src/devices/registry.js';
import { PushRegistration } from '../../src/devices/push-registration.js';
import { ExpeedClient } from '../../src/platform/client.js';
import { createTokenEndpoint } from '../../src/platform/token-endpoint.js';
import { TokenBudget } from '../../src/platform/token-budget.js';
import { InfluxPointWriter } from '../../src/influx/point-writer.js';
import type { RetryPolicy } from '../../src/influx/retry-policy.js';
import type { PointWriter } from '../../src/influx/api.js';
import { createLogger, type Logger } from '../../src/base/log.js';
import { clusterPrefix, createRedis, type ClusterNode, type RedisConnection } from '../../src/base/queues.js';
import { SecretScrubber } from '../../src/base/secrets.js';
import { parsePlatformTime } from '../../src/platform/timestamp.js';
import { PendingSettingsStore } from '../../src/devices/pending-settings.js';
import { startSimulator, type Simulator, type SimulatorOptions } from '../../src/simulator/index.js';
import { createWebhookServer, openIngestQueue, type WebhookServer, type WebhookServerOptions } from '../../src/push/server.js';
import { RedisNonceStore } from '../../src/push/replay.js';
import { createIngestWorker, type IngestWorker } from '../../workers/ingest.js';
import { BackfillRunner } from '../../src/pull/backfill-runner.js';
import { Checkpoints } from '../../src/pull/checkpoints.js';
import { walkHistory } from '../../src/platform/history-walker.js';
import { createTestDatabase, deleteRedisPrefix, freePort, influxRows, INFLUX_URL, REDIS_URL, testPrefix } from '../helpers/services.js';

export const TZ = 'Asia/Shanghai';
export const WEBHOOK_TOKEN = 'wh-token-7f3a9c';
export const PLATFORM_KEY = 'pk-test-1234';
export const SECRET_KEY = 'sk-test-5678';
export const parseTime = (raw: string) => parsePlatformTime(raw, TZ);

export interface StackOptions {
  redisUrl?: string;
  /** run on a Redis Cluster (REDIS_URL then only gives credentials); the prefix gets a hash tag */
  redisClusterNodes?: ClusterNode[];
  influxUrl?: string;
  webhook?: Partial<WebhookConfig>;
  /** server options beyond the configuration (raw cap, JSON bounds) */
  server?: Partial<Pick<WebhookServerOptions, 'maxRawBytes' | 'jsonBounds' | 'plugins'>>;
  /** log lines (level info and up) go here instead of nowhere */
  logTo?: { write(line: string): void };
  /** the dead-letter budget in bytes (EXPEED_DEAD_LETTER_MAX_BYTES) */
  deadLetterMaxBytes?: number;
  /** simulator options; no simulator when undefined */
  sim?: Partial<SimulatorOptions> & Pick<SimulatorOptions, 'devices'>;
  worker?: boolean;
  writerRetry?: Partial<RetryPolicy>;
  sweepEveryMs?: number;
  /** a decorator of the writer the ingest worker uses (the service meters it for /metrics) */
  wrapWriter?: (writer: PointWriter) => PointWriter;
}

export interface Stack {
  prefix: string;
  db: { name: string; url: string; drop(): Promise<void> };
  url: string;
  config: WebhookConfig;
  redis: RedisConnection;
  logger: Logger;
  server: WebhookServer;
  queue: Awaited<ReturnType<typeof openIngestQueue>>;
  writer: InfluxPointWriter;
  deadLetters: RedisDeadLetterStore;
  /** requests refused without keeping anything, by reason (the server's onRefused) */
  refused: Record<string, number>;
  registry: DeviceRegistry;
  pending: PendingSettingsStore;
  worker?: IngestWorker;
  sim?: Simulator;
  /** rows of an InfluxQL query on this stack's database */
  rows(q: string): Promise<Array<Record<string, unknown>>>;
  /** polls until `check` passes (bounded; the deadline is generous, not an assertion on speed) */
  until<T>(what: string, probe: () => Promise<T>, check: (v: T) => boolean, timeoutMs?: number): Promise<T>;
  close(): Promise<void>;
}

export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const redisUrl = options.redisUrl ?? REDIS_URL;
  const target = { redisUrl, redisClusterNodes: options.redisClusterNodes };
  const prefix = options.redisClusterNodes ? clusterPrefix(testPrefix('wh')) : testPrefix('wh');
  const db = await createTestDatabase('wh', options.influxUrl ?? INFLUX_URL);
  const scrubber = new SecretScrubber([WEBHOOK_TOKEN, PLATFORM_KEY, SECRET_KEY]);
  const logger = options.logTo
    ? createLogger({ level: 'info', scrubber, destination: options.logTo })
    : createLogger({ level: process.env.TEST_LOG_LEVEL ?? 'silent', scrubber });
  const redis = createRedis(target, { maxRetriesPerRequest: 1 });
  redis.on('error', () => undefined);
  const deadLetters = new RedisDeadLetterStore(redis, prefix, options.deadLetterMaxBytes ? { maxBytes: options.deadLetterMaxBytes } : {});
  const refused: Record<string, number> = {};
  const registry = new DeviceRegistry(redis, prefix);
  const pending = new PendingSettingsStore(redis, prefix);
  const writer = new InfluxPointWriter({ url: db.url, api: 'v1', bucket: db.name, deadLetters, logger, retry: options.writerRetry as RetryPolicy | undefined });
  const port = await freePort();
  const config: WebhookConfig = {
    host: '127.0.0.1',
    port,
    path: '/webhook',
    token: WEBHOOK_TOKEN,
    bodyLimit: 5 * 1024 * 1024,
    timestampWindowSec: 300,
    requestTimeoutMs: 30_000,
    idleTimeoutMs: 10_000,
    maxConnections: 1000,
    requirePostSignature: false,
    pushOnlineCode: 0,
    autoRegister: true,
    ...options.webhook,
  };
  const queue = await openIngestQueue(target, prefix, logger);
  const server = await createWebhookServer({
    config,
    queue: queue.queue,
    deadLetters,
    nonces: new RedisNonceStore(redis, prefix),
    onRefused: (reason) => void (refused[reason] = (refused[reason] ?? 0) + 1),
    logger,
    parseTime,
    scrubber,
    ...options.server,
  });
  const address = await server.listen();
  const url = `${address}${config.path}`;

  const sim = options.sim
    ? await startSimulator({ platformKey: PLATFORM_KEY, secretKey: SECRET_KEY, from: 0, to: 0, gapRate: 0, ...options.sim, pushUrl: url, webhookToken: WEBHOOK_TOKEN, timezone: TZ })
    : undefined;
  // as the service: a pushed device joins the registry after one successful call to the platform
  const tokens = sim ? new TokenBudget({ redis, prefix, fetchToken: createTokenEndpoint({ baseUrl: sim.url, platformKey: PLATFORM_KEY, secretKey: SECRET_KEY }), timezone: TZ }) : undefined;
  const platform = sim && tokens ? new ExpeedClient({ baseUrl: sim.url, tokens, timezone: TZ }) : undefined;
  const verified = platform ? new PushRegistration({ registry, platform, redis, prefix, logger }) : registry;

  let worker: IngestWorker | undefined;
  let workerConnection: RedisConnection | undefined;
  if (options.worker !== false) {
    workerConnection = createRedis(target);
    workerConnection.on('error', () => undefined);
    worker = createIngestWorker({
      connection: workerConnection,
      prefix,
      writer: options.wrapWriter ? options.wrapWriter(writer) : writer,
      deadLetters,
      settings: pending,
      registry: config.autoRegister ? verified : undefined,
      parseTime,
      pushOnlineCode: config.pushOnlineCode,
      logger,
      sweepEveryMs: options.sweepEveryMs ?? 200,
    });
  }

  const rows = (q: string) => influxRows(db.name, q, db.url);
  const until = async <T>(what: string, probe: () => Promise<T>, check: (v: T) => boolean, timeoutMs = 45_000): Promise<T> => {
    const end = Date.now() + timeoutMs;
    let last: T | undefined;
    while (Date.now() < end) {
      last = await probe();
      if (check(last)) return last;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${what}: not reached within ${timeoutMs} ms; last value ${JSON.stringify(last)?.slice(0, 500)}`);
  };

  return {
    prefix,
    db,
    url,
    config,
    redis,
    logger,
    server,
    queue,
    writer,
    deadLetters,
    refused,
    registry,
    pending,
    worker,
    sim,
    rows,
    until,
    async close() {
      await sim?.close();
      await platform?.close();
      await tokens?.close();
      await server.close();
      await worker?.close();
      await queue.close();
      await writer.close();
      workerConnection?.disconnect();
      await deleteRedisPrefix(prefix, options.redisClusterNodes ?? redisUrl).catch(() => undefined);
      redis.disconnect();
      await db.drop().catch(() => undefined);
    },
  };
}

/**
 * A backfill runner reading the stack's simulator (started with `sim`) and writing through the
 * stack's writer; `close` ends its platform client and token budget.
 */
export function simBackfillRunner(s: Stack): { runner: BackfillRunner; close(): Promise<void> } {
  if (!s.sim) throw new Error('simBackfillRunner needs a stack started with the `sim` option');
  const tokens = new TokenBudget({ redis: s.redis, prefix: s.prefix, fetchToken: createTokenEndpoint({ baseUrl: s.sim.url, platformKey: PLATFORM_KEY, secretKey: SECRET_KEY }), timezone: TZ });
  const client = new ExpeedClient({ baseUrl: s.sim.url, tokens, timezone: TZ });
  const runner = new BackfillRunner({
    walk: (device, range, call) => walkHistory(client, device, { from: range.from, to: range.to, limit: range.limit, call }),
    writer: s.writer,
    deadLetters: s.deadLetters,
    registry: s.registry,
    checkpoints: new Checkpoints({ redis: s.redis, prefix: s.prefix }),
  });
  return {
    runner,
    async close() {
      await client.close();
      await tokens.close();
    },
  };
}
