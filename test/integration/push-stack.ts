/**
 * The push path wired for integration tests exactly as the service wires it: the webhook
 * (Fastify) enqueueing into real Redis, the ingest worker writing through the real InfluxDB
 * writer, the platform simulator pushing for real. Each stack has its own Redis prefix and its
 * own InfluxDB database, and `close()` removes both.
 */
import type { WebhookConfig } from '../../src/base/config.js';
import { loadConfig } from '../../src/base/load-config.js';
import type { RedisDeadLetterStore } from '../../src/dead-letters/store.js';
import type { DeviceRegistry } from '../../src/devices/registry.js';
import type { RetryPolicy } from '../../src/influx/retry-policy.js';
import type { PointWriter } from '../../src/influx/api.js';
import { createLogger, type Logger } from '../../src/base/log.js';
import type { ClusterNode, RedisConnection } from '../../src/base/redis.js';
import { SecretScrubber } from '../../src/base/secrets.js';
import { parsePlatformTime } from '../../src/platform/timestamp.js';
import type { PendingSettingsStore } from '../../src/devices/pending-settings.js';
import { SettingTimeoutSweep } from '../../src/settings/timeout-sweep.js';
import { startSimulator, type Simulator, type SimulatorOptions } from '../../src/simulator/index.js';
import {
  createWebhookServer,
  type OpenIngestQueue,
  type WebhookServer,
  type WebhookServerOptions,
} from '../../src/push/server.js';
import type { IngestWorker } from '../../workers/ingest.js';
import { BackfillRunner } from '../../src/pull/backfill-runner.js';
import { walkHistory } from '../../src/platform/history-walker.js';
import { createApp, type App, type WebhookIntake } from '../../src/app/app.js';
import {
  createTestDatabase,
  deleteRedisPrefix,
  freePort,
  influxRows,
  INFLUX_URL,
  REDIS_URL,
  testPrefix,
  untilValue,
} from '../helpers/services.js';

export const TZ = 'Asia/Shanghai';
export const WEBHOOK_TOKEN = 'wh-token-7f3a9c';
export const PLATFORM_KEY = 'pk-test-1234';
export const SECRET_KEY = 'sk-test-5678';
export const parseTime = (raw: string | number) => parsePlatformTime(raw, TZ);

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
  /** how often overdue settings become `timeout` (default 200 ms) */
  sweepEveryMs?: number;
}

export interface Stack {
  prefix: string;
  db: { name: string; url: string; drop(): Promise<void> };
  url: string;
  config: WebhookConfig;
  redis: RedisConnection;
  logger: Logger;
  server: WebhookServer;
  /** the stack's object graph, built by the composition root as the service builds it */
  app: App;
  queue: OpenIngestQueue;
  /** the webhook's Redis headroom (WEBHOOK_REDIS_MEMORY_PERCENT, WEBHOOK_MAX_BACKLOG) */
  headroom: WebhookIntake['headroom'];
  /** the app's write path (rollup hours marked, metered in app.metrics) */
  writer: PointWriter;
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
  const db = await createTestDatabase('wh', options.influxUrl ?? INFLUX_URL);
  const scrubber = new SecretScrubber([WEBHOOK_TOKEN, PLATFORM_KEY, SECRET_KEY]);
  const logger = options.logTo
    ? createLogger({ level: 'info', scrubber, destination: options.logTo })
    : createLogger({ level: process.env.TEST_LOG_LEVEL ?? 'silent', scrubber });
  // the simulator pushes to the webhook and the webhook's app calls the simulator: the port comes first
  const port = await freePort();
  const webhookPath = options.webhook?.path ?? '/webhook';
  const sim = options.sim
    ? await startSimulator({
        platformKey: PLATFORM_KEY,
        secretKey: SECRET_KEY,
        from: 0,
        to: 0,
        gapRate: 0,
        ...options.sim,
        pushUrl: `http://127.0.0.1:${port}${webhookPath}`,
        webhookToken: WEBHOOK_TOKEN,
        timezone: TZ,
      })
    : undefined;
  const loaded = loadConfig({
    // without a simulator nothing may reach a real platform: an address nobody listens on
    EXPEED_BASE_URL: sim?.url ?? 'http://127.0.0.1:9',
    EXPEED_PLATFORM_KEY: PLATFORM_KEY,
    EXPEED_SECRET_KEY: SECRET_KEY,
    EXPEED_TIMEZONE: TZ,
    EXPEED_PREFIX: testPrefix('wh'),
    REDIS_URL: redisUrl,
    ...(options.redisClusterNodes
      ? { REDIS_CLUSTER_NODES: options.redisClusterNodes.map((n) => `${n.host}:${n.port}`).join(',') }
      : {}),
    INFLUX_URL: db.url,
    INFLUX_API: 'v1',
    INFLUX_BUCKET: db.name,
    EXPEED_RATE_LIMIT: '1000',
    LOG_LEVEL: 'silent',
    ...(options.deadLetterMaxBytes ? { EXPEED_DEAD_LETTER_MAX_BYTES: String(options.deadLetterMaxBytes) } : {}),
  });
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
    redisMemoryPercent: 80,
    maxBacklog: 0,
    ...options.webhook,
  };
  const app = createApp({ ...loaded, webhook: config }, { logger, scrubber, writerRetry: options.writerRetry });
  const { prefix } = app.config;
  const refused: Record<string, number> = {};
  // as the service: what the webhook keeps goes over the ingest queue's fail-fast connection
  const intake = await app.webhookIntake();
  const queue = intake.ingest;
  const server = await createWebhookServer({
    config,
    queue: queue.queue,
    deadLetters: intake.deadLetters,
    nonces: intake.nonces,
    headroom: intake.headroom,
    onRefused: (reason) => void (refused[reason] = (refused[reason] ?? 0) + 1),
    logger,
    parseTime,
    scrubber,
    ...options.server,
  });
  const address = await server.listen();
  const url = `${address}${config.path}`;

  let worker: IngestWorker | undefined;
  let sweep: SettingTimeoutSweep | undefined;
  if (options.worker !== false) {
    // as the service: a pushed device joins the registry after one successful call to the platform;
    // without a simulator there is no platform to ask, and the registry takes it unverified
    worker = app.startIngestWorker(sim ? {} : { registry: config.autoRegister ? app.registry : undefined });
    sweep = new SettingTimeoutSweep({
      pending: app.settings,
      writer: app.writer,
      logger,
      everyMs: options.sweepEveryMs ?? 200,
    });
    sweep.start();
  }

  const rows = (q: string) => influxRows(db.name, q, db.url);
  const until = <T>(what: string, probe: () => Promise<T>, check: (v: T) => boolean, timeoutMs = 45_000): Promise<T> =>
    untilValue(what, probe, check, { timeoutMs, intervalMs: 100 });

  return {
    prefix,
    db,
    url,
    config,
    redis: app.redis,
    logger,
    server,
    app,
    queue,
    headroom: intake.headroom,
    writer: app.writer,
    deadLetters: app.deadLetters,
    refused,
    registry: app.registry,
    pending: app.settings,
    worker,
    sim,
    rows,
    until,
    async close() {
      await sim?.close();
      await server.close();
      await sweep?.stop();
      await app.close();
      await deleteRedisPrefix(prefix, options.redisClusterNodes ?? redisUrl).catch(() => undefined);
      await db.drop().catch(() => undefined);
    },
  };
}

/**
 * A backfill runner reading the stack's simulator (started with `sim`) through the app's platform
 * client and writing through its writer; `close` has nothing of its own to end (the app does).
 */
export function simBackfillRunner(s: Stack): { runner: BackfillRunner; close(): Promise<void> } {
  if (!s.sim) throw new Error('simBackfillRunner needs a stack started with the `sim` option');
  const runner = new BackfillRunner({
    walk: (device, range, call) =>
      walkHistory(s.app.platform, device, { from: range.from, to: range.to, limit: range.limit, call }),
    writer: s.app.writer,
    deadLetters: s.deadLetters,
    registry: s.registry,
    checkpoints: s.app.checkpoints,
  });
  return { runner, close: async () => undefined };
}
