/**
 * The long-running service: one object graph for the roles `webhook`, `worker` and `scheduler`,
 * wired in this one file, with an explicit, ordered shutdown. `expeed-sync run` starts it.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import type { Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config } from './config.js';
import type { Logger } from './log.js';
import { createRedis } from './queues.js';
import type { SecretScrubber } from './secrets.js';
import { parsePlatformTime } from './platform/timestamp.js';
import { createPullStack, type PullStack } from './sync/pull-stack.js';
import { createScheduler, type Scheduler } from './sync/scheduler.js';
import { Heartbeat } from './sync/heartbeat.js';
import { catchUpOnStart } from './sync/catch-up.js';
import { createWebhookServer, openIngestQueue, type WebhookServer } from './webhook/server.js';
import { createIngestWorker, type IngestWorker } from '../workers/ingest.js';
import { PendingSettingsStore } from './settings/pending-store.js';
import { PushRegistration } from './devices/push-registration.js';
import { createMetrics, DeviceLabels, meterPlatformClient, meterWriter, type Metrics } from './ops/metrics.js';
import { opsRoutes, type ReadinessCheck } from './ops/http.js';
import type { QueuedWindow } from './sync/backfill-queue.js';

export const ROLES = ['webhook', 'worker', 'scheduler'] as const;
export type Role = (typeof ROLES)[number];

export interface ServiceOptions {
  config: Config;
  logger: Logger;
  scrubber: SecretScrubber;
  roles: ReadonlySet<Role>;
  /** how long shutdown lets running jobs finish before closing them forcibly, ms (default 20 s) */
  shutdownGraceMs?: number;
  /** where /healthz, /readyz and /metrics listen when the webhook role does not run here (0 = off) */
  opsPort?: number;
}

export interface Service {
  /** the address of the HTTP server (webhook and ops routes), when one listens */
  address?: string;
  metrics: Metrics;
  pull: PullStack;
  /** windows queued at start for devices that were never synced, or for the missed window after an outage */
  startupBackfills: QueuedWindow[];
  /** the ordered shutdown: stop accepting (HTTP, cron), workers finish or stop within the grace, writer, Redis */
  close(): Promise<void>;
}

function observeJobs(worker: Worker, queue: string, metrics: Metrics): void {
  const seconds = (job?: { processedOn?: number; finishedOn?: number }) =>
    job?.processedOn && job.finishedOn ? (job.finishedOn - job.processedOn) / 1000 : undefined;
  worker.on('completed', (job) => {
    const s = seconds(job);
    if (s !== undefined) metrics.jobDuration.observe({ queue, outcome: 'completed' }, s);
  });
  worker.on('failed', (job) => {
    const s = seconds(job);
    if (s !== undefined) metrics.jobDuration.observe({ queue, outcome: 'failed' }, s);
  });
}

/** Closes a worker, giving its running jobs `graceMs` before it stops waiting for them. */
async function closeWithin(worker: { close(force?: boolean): Promise<void> }, graceMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const graceful = worker.close();
  const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), graceMs)));
  const outcome = await Promise.race([graceful.then(() => 'done' as const), late]);
  clearTimeout(timer);
  // a job cut short keeps a consistent checkpoint (it only moves after acknowledged writes) and is picked up again
  if (outcome === 'late') await worker.close(true);
}

export async function startService(options: ServiceOptions): Promise<Service> {
  const { config, logger, scrubber, roles } = options;
  const grace = options.shutdownGraceMs ?? 20_000;
  const metrics = createMetrics();
  const redis: Redis = createRedis(config.redisUrl);
  redis.on('error', (err) => logger.warn({ err: err.message }, 'Redis connection error'));
  const closers: Array<{ name: string; close: () => Promise<void> }> = [];
  // per-device series for registered devices only (read at start and at every scrape)
  const labels = new DeviceLabels(() => pull.registry.list());
  const pull = createPullStack({
    config,
    logger,
    scrubber,
    redis,
    tokenBudget: { onRefresh: () => metrics.tokenRefreshes.inc() },
    wrapPlatform: (p) => meterPlatformClient(p, metrics),
    wrapWriter: (w) => meterWriter(w, metrics, { deviceLabel: labels.label }),
    onQuietSkip: () => metrics.walksSkipped.inc(),
  });
  const parseTime = (raw: string) => parsePlatformTime(raw, config.timezone);
  const settings = new PendingSettingsStore(redis, config.prefix);
  const workers: Array<{ name: string; close(force?: boolean): Promise<void>; isRunning(): boolean }> = [];
  const startupBackfills: QueuedWindow[] = [];

  try {
    if (config.devicesFile) {
      const n = await pull.registry.mergeFile(config.devicesFile);
      logger.info({ devices: n, file: config.devicesFile }, 'devices file merged into the registry');
    }
    for (const d of await pull.registry.list()) scrubber.add(d.key);
    await labels.refresh();

    let ingestQueue: Awaited<ReturnType<typeof openIngestQueue>> | undefined;
    let webhook: WebhookServer | undefined;
    let ingest: IngestWorker | undefined;

    if (roles.has('worker')) {
      const bf = pull.startBackfillWorker();
      observeJobs(bf, 'backfill', metrics);
      workers.push({ name: 'backfill', close: (f) => bf.close(f), isRunning: () => bf.isRunning() });
      const st = pull.startStatusWorker();
      observeJobs(st, 'status', metrics);
      workers.push({ name: 'status', close: (f) => st.close(f), isRunning: () => st.isRunning() });
      // BullMQ leaves a connection it was handed open: this one is closed with the worker below
      const ingestConnection = createRedis(config.redisUrl);
      ingest = createIngestWorker({
        connection: ingestConnection,
        prefix: config.prefix,
        writer: pull.writer,
        deadLetters: pull.deadLetters,
        settings,
        registry: config.webhook.autoRegister ? new PushRegistration({ registry: pull.registry, platform: pull.platform, redis, prefix: config.prefix, logger }) : undefined,
        parseTime,
        pushOnlineCode: config.webhook.pushOnlineCode,
        logger,
      });
      const iw = ingest.worker;
      observeJobs(iw, 'ingest', metrics);
      workers.push({
        name: 'ingest',
        close: async (force) => {
          await (force ? iw.close(true) : ingest!.close());
          await ingestConnection.quit().catch(() => ingestConnection.disconnect());
        },
        isRunning: () => iw.isRunning(),
      });
    }

    let scheduler: Scheduler | undefined;
    // the heartbeat says "the installation was pulling": the scheduler and the workers keep it
    const heartbeat =
      roles.has('scheduler') || roles.has('worker')
        ? new Heartbeat({ redis, prefix: config.prefix, onError: (err) => logger.warn({ err }, 'heartbeat failed') })
        : undefined;
    if (heartbeat && roles.has('scheduler')) {
      const caught = await catchUpOnStart({
        redis,
        prefix: config.prefix,
        heartbeat,
        registry: pull.registry,
        backfills: pull.backfills,
        thresholdMs: config.catchUpThresholdMs,
        logger,
      });
      if (caught.jobs) logger.info({ downMs: caught.downMs, window: caught.window, jobs: caught.jobs }, 'catch-up: missed window queued');
      // a device never synced is not left waiting for the night
      const now = Date.now();
      for (const d of await pull.registry.list()) {
        if (await pull.checkpoints.get(d.id)) continue;
        startupBackfills.push(...(await pull.backfills.enqueue({ deviceId: d.id, from: config.backfillStart, to: now, reason: 'catch-up' })));
      }
      if (startupBackfills.length) logger.info({ windows: startupBackfills.length }, 'first sync of new devices queued');
      scheduler = createScheduler({
        redis,
        prefix: config.prefix,
        timezone: config.timezone,
        schedules: config.schedules,
        registry: pull.registry,
        checkpoints: pull.checkpoints,
        backfills: pull.backfills,
        statusQueue: pull.statusQueue,
        gapFinder: {
          scan: async (deviceId, from, to) => {
            const found = await pull.gapFinder.scan(deviceId, from, to);
            if (found.gaps.length) metrics.gapsFound.inc({ device_id: deviceId }, found.gaps.length);
            return found;
          },
        },
        backfillStart: config.backfillStart,
        statusRatePerSecond: config.platformRateLimit,
        onStatusSkipped: () => metrics.statusSlotsSkipped.inc(),
        logger,
      });
      scheduler.start();
      // online/offline is known from the start, not only after the first status slot; the minute is
      // the slot, so scheduler processes starting together make one poll
      if (config.schedules.status) await scheduler.fire('status', new Date(Math.floor(now / 60_000) * 60_000));
      logger.info({ schedules: scheduler.active(), timezone: config.timezone }, 'scheduler started');
    }
    // after catch-up has read the previous beat
    heartbeat?.start();

    const queues: Queue[] = [pull.backfillQueue as Queue, pull.statusQueue as Queue];
    if (roles.has('webhook')) {
      ingestQueue = await openIngestQueue(config.redisUrl, config.prefix, logger);
      queues.push(ingestQueue.queue as Queue);
    }
    const readiness: ReadinessCheck[] = [
      { name: 'redis', check: async () => (await redis.ping()) === 'PONG' },
      {
        name: 'influxdb',
        check: async () => {
          const res = await fetch(`${config.influx.url}/ping`);
          return res.status === 204 || res.ok;
        },
      },
      ...workers.map((w) => ({ name: `worker:${w.name}`, check: async () => w.isRunning() })),
    ];
    const collect = async () => {
      await labels.refresh();
      const usage = await pull.tokens.usage();
      metrics.tokenCallsToday.set(usage.calls);
      metrics.tokenBudget.set(usage.limit);
      for (const q of queues) {
        const counts = await q.getJobCounts('waiting', 'active', 'delayed', 'failed', 'completed', 'prioritized', 'waiting-children');
        for (const [state, n] of Object.entries(counts)) metrics.queueDepth.set({ queue: q.name, state }, n);
      }
      metrics.deadLetters.set(await pull.deadLetters.count());
    };
    const ops = opsRoutes({ metrics, collect, readiness, queues, admin: config.admin });

    let opsServer: FastifyInstance | undefined;
    let address: string | undefined;
    if (roles.has('webhook') && ingestQueue) {
      webhook = await createWebhookServer({
        config: config.webhook,
        queue: ingestQueue.queue,
        deadLetters: pull.deadLetters,
        logger,
        scrubber,
        parseTime,
        plugins: [ops],
      });
      address = await webhook.listen();
      logger.info({ address, path: config.webhook.path, handshake: config.webhook.token ? 'on' : 'off (EXPEED_WEBHOOK_TOKEN unset)' }, 'webhook listening');
    } else if (options.opsPort) {
      opsServer = Fastify({ logger: false });
      await opsServer.register(ops);
      address = await opsServer.listen({ host: config.webhook.host, port: options.opsPort });
      logger.info({ address }, 'health and metrics listening');
    }

    // the order of shutdown: stop accepting, stop scheduling, let workers finish, then the rest
    if (webhook) closers.push({ name: 'webhook', close: () => webhook!.close() });
    if (opsServer) closers.push({ name: 'ops http', close: () => opsServer!.close() });
    if (scheduler) closers.push({ name: 'scheduler', close: () => scheduler!.close() });
    if (heartbeat) closers.push({ name: 'heartbeat', close: async () => heartbeat.close() });
    closers.push({ name: 'workers', close: async () => void (await Promise.all(workers.map((w) => closeWithin(w, grace)))) });
    if (ingestQueue) closers.push({ name: 'ingest queue', close: () => ingestQueue!.close() });
    closers.push({ name: 'pull stack', close: () => pull.close() });
    return {
      address,
      metrics,
      pull,
      startupBackfills,
      async close() {
        for (const c of closers.splice(0)) {
          try {
            await c.close();
          } catch (err) {
            logger.warn({ err, component: c.name }, 'shutdown step failed; going on with the next');
          }
        }
        await redis.quit().catch(() => redis.disconnect());
      },
    };
  } catch (err) {
    await Promise.allSettled(workers.map((w) => w.close(true)));
    await pull.close().catch(() => undefined);
    redis.disconnect();
    throw err;
  }
}
