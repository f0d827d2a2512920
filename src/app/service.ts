/**
 * The long-running service: one object graph for the roles `webhook`, `worker` and `scheduler`,
 * wired in this one file, with an explicit, ordered shutdown. `expeed-sync run` starts it.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import type { Queue, Worker } from 'bullmq';
import type { Config } from '../base/config.js';
import type { Logger } from '../base/log.js';
import { closeRedis, createRedis, type RedisConnection } from '../base/queues.js';
import { waitForInflux } from '../influx/ping.js';
import { ROLLUP_RP } from '../influx/database.js';
import type { SecretScrubber } from '../base/secrets.js';
import { parsePlatformTime } from '../platform/timestamp.js';
import { createPullStack, type PullStack } from './pull-stack.js';
import { createScheduler, type Scheduler } from '../pull/scheduler.js';
import { Heartbeat } from '../pull/heartbeat.js';
import { catchUpOnStart } from '../pull/catch-up.js';
import { createWebhookServer, openIngestQueue, type WebhookServer } from '../push/server.js';
import { RedisNonceStore } from '../push/replay.js';
import { budgetCheck } from '../dead-letters/budget-report.js';
import { createIngestWorker, type IngestWorker } from '../../workers/ingest.js';
import { PendingSettingsStore } from '../devices/pending-settings.js';
import { PushRegistration } from '../devices/push-registration.js';
import { createMetrics, DeviceLabels, meterPlatformClient, meterWriter, setTokenUsage, type Metrics } from '../ops/metrics.js';
import { opsRoutes, type ReadinessCheck } from '../ops/http.js';
import type { QueuedWindow } from '../pull/backfill-queue.js';
import type { RollupDispatcher } from '../rollup/dispatcher.js';

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

/** Says which address a listen failed on and which setting chose it, instead of a bare `listen EADDRINUSE`. */
export class ListenError extends Error {
  readonly retryable = false;

  constructor(address: string, setting: string, cause: NodeJS.ErrnoException) {
    const why: Record<string, string> = { EADDRINUSE: 'address already in use', EADDRNOTAVAIL: 'address not available on this machine', EACCES: 'permission denied' };
    super(`cannot listen on ${address} (${setting}): ${why[cause.code ?? ''] ?? cause.message} (${cause.code ?? 'error'})`, { cause });
    this.name = 'ListenError';
  }
}

async function listening(listen: () => Promise<string>, address: string, setting: string): Promise<string> {
  try {
    return await listen();
  } catch (err) {
    throw (err as NodeJS.ErrnoException).code ? new ListenError(address, setting, err as NodeJS.ErrnoException) : err;
  }
}

export async function startService(options: ServiceOptions): Promise<Service> {
  const { config, logger, scrubber, roles } = options;
  const grace = options.shutdownGraceMs ?? 20_000;
  const metrics = createMetrics();
  const redis: RedisConnection = createRedis(config, {}, (err) => logger.warn({ err: err.message }, 'Redis connection error'));
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
  // what has started so far: a failed start stops exactly these, in the same order as a normal stop
  const started: { webhook?: WebhookServer; opsServer?: FastifyInstance; scheduler?: Scheduler; heartbeat?: Heartbeat; rollupDispatcher?: RollupDispatcher; ingestQueue?: Awaited<ReturnType<typeof openIngestQueue>> } = {};

  /** the order of shutdown: stop accepting, stop scheduling, let workers finish (or stop them at once), then the rest */
  async function shutdown(force: boolean): Promise<void> {
    const { webhook, opsServer, scheduler, rollupDispatcher, heartbeat, ingestQueue } = started;
    const steps: Array<[string, (() => Promise<void>) | undefined]> = [
      ['webhook', webhook && (() => webhook.close())],
      ['ops http', opsServer && (() => opsServer.close())],
      ['scheduler', scheduler && (() => scheduler.close())],
      ['rollup dispatch', rollupDispatcher && (() => rollupDispatcher.close())],
      ['heartbeat', heartbeat && (async () => heartbeat.close())],
      ['workers', async () => void (await Promise.all(workers.splice(0).map((w) => (force ? w.close(true) : closeWithin(w, grace)))))],
      ['ingest queue', ingestQueue && (() => ingestQueue.close())],
      ['pull stack', () => pull.close()],
    ];
    for (const [name, close] of steps) {
      if (!close) continue;
      try {
        await close();
        logger.debug({ component: name }, 'stopped');
      } catch (err) {
        logger.warn({ err, component: name }, 'shutdown step failed; going on with the next');
      }
    }
    await closeRedis(redis);
  }

  try {
    // a worker that cannot write would only fill the queues: wait a bounded time, then say why
    if (roles.has('worker') || roles.has('scheduler')) {
      await waitForInflux({
        url: config.influx.url,
        timeoutMs: config.influxStartTimeoutMs,
        onRetry: (reason, attempt) => logger.warn({ influx: config.influx.url, reason, attempt }, 'InfluxDB not answering yet; waiting'),
      });
      if (config.influx.rawRetentionMs !== undefined) {
        // set the retention policies now (and refuse 2.x+), not at the first write
        await pull.influxWriter.api();
        logger.info({ rawRetentionMs: config.influx.rawRetentionMs, rollupRp: ROLLUP_RP }, 'raw rows expire after EXPEED_RAW_RETENTION; rollups are kept forever');
      }
    }
    if (config.devicesFile) {
      const n = await pull.registry.mergeFile(config.devicesFile);
      logger.info({ devices: n, file: config.devicesFile }, 'devices file merged into the registry');
    }
    for (const d of await pull.registry.list()) scrubber.add(d.key);
    await labels.refresh();

    let ingest: IngestWorker | undefined;

    if (roles.has('worker')) {
      const bf = pull.startBackfillWorker();
      observeJobs(bf, 'backfill', metrics);
      workers.push({ name: 'backfill', close: (f) => bf.close(f), isRunning: () => bf.isRunning() });
      const st = pull.startStatusWorker();
      observeJobs(st, 'status', metrics);
      workers.push({ name: 'status', close: (f) => st.close(f), isRunning: () => st.isRunning() });
      const ru = pull.rollup.startWorker();
      observeJobs(ru, 'rollup', metrics);
      workers.push({ name: 'rollup', close: (f) => ru.close(f), isRunning: () => ru.isRunning() });
      // BullMQ leaves a connection it was handed open: this one is closed with the worker below
      const ingestConnection = createRedis(config, {}, (err) => logger.debug({ err: err.message }, 'ingest worker Redis connection error'));
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
          await closeRedis(ingestConnection);
        },
        isRunning: () => iw.isRunning(),
      });
    }

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
      const scheduler = (started.scheduler = createScheduler({
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
      }));
      scheduler.start();
      // settled dirty hours become rollup jobs where the schedules run (one job per device at a time)
      started.rollupDispatcher = pull.rollup.startDispatcher();
      // online/offline is known from the start, not only after the first status slot; the minute is
      // the slot, so scheduler processes starting together make one poll
      if (config.schedules.status) await scheduler.fire('status', new Date(Math.floor(now / 60_000) * 60_000));
      logger.info({ schedules: scheduler.active(), timezone: config.timezone }, 'scheduler started');
    }
    // after catch-up has read the previous beat
    if (heartbeat) {
      started.heartbeat = heartbeat;
      heartbeat.start();
    }

    const queues: Queue[] = [pull.backfillQueue as Queue, pull.statusQueue as Queue, pull.rollup.queue as Queue];
    if (roles.has('webhook')) {
      started.ingestQueue = await openIngestQueue(config, config.prefix, logger);
      queues.push(started.ingestQueue.queue as Queue);
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
      budgetCheck(pull.deadLetters),
    ];
    const collect = async () => {
      await labels.refresh();
      setTokenUsage(metrics, await pull.tokens.usage(), Date.now());
      for (const q of queues) {
        const counts = await q.getJobCounts('waiting', 'active', 'delayed', 'failed', 'completed', 'prioritized', 'waiting-children');
        for (const [state, n] of Object.entries(counts)) metrics.queueDepth.set({ queue: q.name, state }, n);
      }
      metrics.deadLetters.set(await pull.deadLetters.count());
      const budget = await pull.deadLetters.budget();
      metrics.deadLetterBytes.set(budget.usedBytes);
      metrics.deadLetterMaxBytes.set(budget.maxBytes);
      for (const [kindSource, n] of Object.entries(budget.notKept)) {
        const [kind, source] = kindSource.split('/');
        metrics.deadLettersNotKept.set({ kind, source }, n);
      }
    };
    const ops = opsRoutes({ metrics, collect, readiness, queues, admin: config.admin });

    let address: string | undefined;
    if (roles.has('webhook') && started.ingestQueue) {
      const webhook = (started.webhook = await createWebhookServer({
        config: config.webhook,
        queue: started.ingestQueue.queue,
        deadLetters: pull.deadLetters,
        nonces: new RedisNonceStore(started.ingestQueue.connection, config.prefix),
        maxRawBytes: config.deadLetters.maxRawBytes,
        onRefused: (reason) => metrics.webhookRefused.inc({ reason }),
        logger,
        scrubber,
        parseTime,
        plugins: [ops],
      }));
      address = await listening(() => webhook.listen(), `${config.webhook.host}:${config.webhook.port}`, 'WEBHOOK_HOST, WEBHOOK_PORT');
      logger.info({ address, path: config.webhook.path, handshake: config.webhook.token ? 'on' : 'off (EXPEED_WEBHOOK_TOKEN unset)' }, 'webhook listening');
    } else if (options.opsPort) {
      const opsServer = (started.opsServer = Fastify({ logger: false }));
      await opsServer.register(ops);
      address = await listening(() => opsServer.listen({ host: config.webhook.host, port: options.opsPort }), `${config.webhook.host}:${options.opsPort}`, 'WEBHOOK_HOST, --ops-port');
      logger.info({ address }, 'health and metrics listening');
    }

    return {
      address,
      metrics,
      pull,
      startupBackfills,
      close: () => shutdown(false),
    };
  } catch (err) {
    await shutdown(true);
    throw err;
  }
}
