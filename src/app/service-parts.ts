/**
 * The steps `startService` is made of, each over the app: waiting for InfluxDB, starting the
 * workers of this process, the scheduler with its start-up catch-up, the ops routes (health,
 * readiness, metrics), and the HTTP listeners. service.ts only orders them.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import type { Queue, Worker } from 'bullmq';
import { waitForInflux } from '../influx/ping.js';
import { rollupRps } from '../influx/database.js';
import { budgetCheck } from '../dead-letters/budget-report.js';
import { setDeviceFailing, setRollupBacklog, setTokenUsage, type Metrics } from '../ops/metrics.js';
import { failedJobsPerDevice, isFailing } from '../status/failing-devices.js';
import { QUEUE } from '../base/jobs.js';
import { opsRoutes, type ReadinessCheck } from '../ops/ops-routes.js';
import { parsePlatformTime } from '../platform/timestamp.js';
import { catchUpOnStart } from '../pull/catch-up.js';
import type { Heartbeat } from '../pull/heartbeat.js';
import type { QueuedWindow } from '../pull/backfill-queue.js';
import type { Scheduler } from '../pull/scheduler.js';
import { createWebhookServer, type WebhookServer } from '../push/server.js';
import { headroomCheck } from '../push/redis-headroom.js';
import type { App, WebhookIntake } from './app.js';

/** A worker as the service stops it: gracefully within the grace, or at once. */
export interface RunningWorker {
  name: string;
  close(force?: boolean): Promise<void>;
  isRunning(): boolean;
}

/** Job durations by queue and outcome into the metrics. */
function observeJobs(worker: Worker, queue: string, metrics: Metrics): void {
  const seconds = (job?: { processedOn?: number; finishedOn?: number }) =>
    job?.processedOn && job.finishedOn ? (job.finishedOn - job.processedOn) / 1000 : undefined;
  const observe = (outcome: 'completed' | 'failed', job?: { processedOn?: number; finishedOn?: number }) => {
    const s = seconds(job);
    if (s !== undefined) metrics.jobDuration.observe({ queue, outcome }, s);
  };
  worker.on('completed', (job) => observe('completed', job));
  worker.on('failed', (job) => observe('failed', job));
}

/** Closes a worker, giving its running jobs `graceMs` before it stops waiting for them. */
export async function closeWithin(worker: { close(force?: boolean): Promise<void> }, graceMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const graceful = worker.close();
  const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), graceMs)));
  const outcome = await Promise.race([graceful.then(() => 'done' as const), late]);
  clearTimeout(timer);
  // a job cut short keeps a consistent checkpoint (it only moves after acknowledged writes) and is picked up again
  if (outcome === 'late') await worker.close(true);
}

/** A worker can do nothing without InfluxDB: waits a bounded time, then says why; sets the retention policies. */
export async function influxReady(app: App): Promise<void> {
  const { config, logger } = app;
  await waitForInflux({
    url: config.influx.url,
    timeoutMs: config.influxStartTimeoutMs,
    onRetry: (reason, attempt) =>
      logger.warn({ influx: config.influx.url, reason, attempt }, 'InfluxDB not answering yet; waiting'),
  });
  const { rawRetentionMs, hourlyRetentionMs } = config.influx;
  if (rawRetentionMs === undefined && hourlyRetentionMs === undefined) return;
  // set the retention policies now (and refuse 2.x+), not at the first write
  await app.influxApi();
  logger.info(
    { rawRetentionMs, hourlyRetentionMs, ...rollupRps(config.influx) },
    'retention policies set: raw rows expire after EXPEED_RAW_RETENTION, hourly rollups after EXPEED_HOURLY_RETENTION (when set); daily rollups are kept forever',
  );
}

/** The devices file joins the registry; every device key becomes a secret; metric labels are read. */
export async function loadDevices(app: App): Promise<void> {
  const { config, logger } = app;
  if (config.devicesFile) {
    const n = await app.registry.mergeFile(config.devicesFile);
    logger.info({ devices: n, file: config.devicesFile }, 'devices file merged into the registry');
  }
  for (const d of await app.registry.list()) app.scrubber.add(d.key);
  await app.labels.refresh();
}

/**
 * Backfill jobs delayed for a credentials cool-down start at once when the pause no longer holds
 * for this process's credentials (they were fixed, or the pause was lifted or ended). While it
 * holds, one line says so (the refusal was logged by the process that met it).
 */
export async function releaseCooldownWaits(app: App): Promise<void> {
  const usage = await app.tokens.usage();
  if (usage.cooldownKind === 'credentials') {
    const { jobs } = await app.cooldownWaits.waiting();
    const at = (t?: number) => (t === undefined ? undefined : new Date(t).toISOString());
    app.logger.warn(
      { refusedAt: at(usage.cooldownSince), until: at(usage.cooldownUntil), jobs },
      'the platform refused these credentials: token calls are paused, work waits for the cool-down (fix EXPEED_PLATFORM_KEY / EXPEED_SECRET_KEY)',
    );
    return;
  }
  const promoted = await app.cooldownWaits.release(app.backfillQueue);
  if (promoted)
    app.logger.info({ jobs: promoted }, 'backfill jobs that waited for the credentials cool-down start now');
}

/** The four workers of role `worker`, their job durations metered. */
export function startWorkers(app: App): RunningWorker[] {
  const started: Array<[string, Worker, RunningWorker['close']]> = [];
  const workers: Array<[string, Worker]> = [
    ['backfill', app.startBackfillWorker()],
    ['status', app.startStatusWorker()],
    ['rollup', app.startRollupWorker()],
    ['ingest', app.startIngestWorker()],
  ];
  for (const [name, w] of workers) started.push([name, w, (force) => w.close(force)]);
  return started.map(([name, worker, close]) => {
    observeJobs(worker, name, app.metrics);
    return { name, close, isRunning: () => worker.isRunning() };
  });
}

/**
 * Role `scheduler` at start: the missed window after an outage, a first sync of devices never
 * synced, then the schedules, the rollup dispatcher and a first status poll.
 */
export async function startScheduling(
  app: App,
  heartbeat: Heartbeat,
  started: { scheduler?: Scheduler; rollupDispatcher?: { close(): Promise<void> } },
): Promise<QueuedWindow[]> {
  const { config, logger } = app;
  const caught = await catchUpOnStart({
    redis: app.redis,
    prefix: config.prefix,
    heartbeat,
    registry: app.registry,
    backfills: app.backfills,
    thresholdMs: config.catchUpThresholdMs,
    logger,
  });
  if (caught.jobs)
    logger.info({ downMs: caught.downMs, window: caught.window, jobs: caught.jobs }, 'catch-up: missed window queued');
  // a device never synced is not left waiting for the night
  const now = Date.now();
  const ids = (await app.registry.list()).map((d) => d.id);
  const synced = await app.checkpoints.getMany(ids);
  const firstSyncs: QueuedWindow[] = await app.backfills.enqueueMany(
    ids
      .filter((id) => !synced.has(id))
      .map((id) => ({ deviceId: id, from: config.backfillStart, to: now, reason: 'catch-up' as const })),
  );
  if (firstSyncs.length) logger.info({ windows: firstSyncs.length }, 'first sync of new devices queued');
  const scheduler = (started.scheduler = app.scheduler());
  scheduler.start();
  // settled dirty hours become rollup jobs where the schedules run (one job per device at a time)
  started.rollupDispatcher = app.rollup.startDispatcher();
  // online/offline is known from the start, not only after the first status slot; the minute is
  // the slot, so scheduler processes starting together make one poll
  if (config.schedules.status) await scheduler.fire('status', new Date(Math.floor(now / 60_000) * 60_000));
  logger.info({ schedules: scheduler.active(), timezone: config.timezone }, 'scheduler started');
  return firstSyncs;
}

/** /healthz, /readyz (Redis, InfluxDB, each worker, the dead-letter budget) and /metrics (read at scrape time). */
export function opsPlugin(app: App, workers: RunningWorker[], queues: Queue[], intake?: WebhookIntake) {
  const { config, metrics, deadLetters } = app;
  const readiness: ReadinessCheck[] = [
    { name: 'redis', check: async () => (await app.redis.ping()) === 'PONG' },
    {
      name: 'influxdb',
      check: async () => {
        const res = await fetch(`${config.influx.url}/ping`);
        return res.status === 204 || res.ok;
      },
    },
    ...workers.map((w) => ({ name: `worker:${w.name}`, check: async () => w.isRunning() })),
    budgetCheck(deadLetters),
    ...(intake ? [headroomCheck(intake.headroom)] : []),
  ];
  const collect = async () => {
    await app.labels.refresh();
    setTokenUsage(metrics, await app.tokens.usage(), Date.now());
    for (const q of queues) {
      const counts = await q.getJobCounts(
        'waiting',
        'active',
        'delayed',
        'failed',
        'completed',
        'prioritized',
        'waiting-children',
      );
      for (const [state, n] of Object.entries(counts)) metrics.queueDepth.set({ queue: q.name, state }, n);
    }
    const failedJobs = await failedJobsPerDevice(queues.find((q) => q.name === QUEUE.backfill));
    setDeviceFailing(
      metrics,
      (await app.registry.list()).map((d) => ({ id: d.id, failing: isFailing(d, failedJobs.get(d.id) ?? 0) })),
    );
    metrics.deadLetters.set(await deadLetters.count());
    setRollupBacklog(metrics, await app.rollup.dirty.backlog(), Date.now(), await app.rollup.days.backlog());
    const budget = await deadLetters.budget();
    metrics.deadLetterBytes.set(budget.usedBytes);
    metrics.deadLetterMaxBytes.set(budget.maxBytes);
    for (const [kindSource, n] of Object.entries(budget.notKept)) {
      const [kind, source] = kindSource.split('/');
      metrics.deadLettersNotKept.set({ kind, source }, n);
    }
  };
  return opsRoutes({ metrics, collect, readiness, queues, admin: config.admin });
}

/** Says which address a listen failed on and which setting chose it, instead of a bare `listen EADDRINUSE`. */
export class ListenError extends Error {
  readonly retryable = false;

  constructor(address: string, setting: string, cause: NodeJS.ErrnoException) {
    const why: Record<string, string> = {
      EADDRINUSE: 'address already in use',
      EADDRNOTAVAIL: 'address not available on this machine',
      EACCES: 'permission denied',
    };
    super(
      `cannot listen on ${address} (${setting}): ${why[cause.code ?? ''] ?? cause.message} (${cause.code ?? 'error'})`,
      { cause },
    );
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

/** The webhook (with the ops routes) on WEBHOOK_HOST:WEBHOOK_PORT. */
export async function listenWebhook(
  app: App,
  intake: WebhookIntake,
  ops: ReturnType<typeof opsPlugin>,
  started: { webhook?: WebhookServer },
): Promise<string> {
  const { config, logger, metrics } = app;
  const webhook = (started.webhook = await createWebhookServer({
    config: config.webhook,
    queue: intake.ingest.queue,
    deadLetters: intake.deadLetters,
    nonces: intake.nonces,
    headroom: intake.headroom,
    maxRawBytes: config.deadLetters.maxRawBytes,
    onRefused: (reason) => metrics.webhookRefused.inc({ reason }),
    logger,
    scrubber: app.scrubber,
    parseTime: (raw) => parsePlatformTime(raw, config.timezone),
    plugins: [ops],
  }));
  const address = await listening(
    () => webhook.listen(),
    `${config.webhook.host}:${config.webhook.port}`,
    'WEBHOOK_HOST, WEBHOOK_PORT',
  );
  logger.info(
    { address, path: config.webhook.path, handshake: config.webhook.token ? 'on' : 'off (EXPEED_WEBHOOK_TOKEN unset)' },
    'webhook listening',
  );
  return address;
}

/** Health and metrics alone (no webhook role here) on WEBHOOK_HOST and --ops-port. */
export async function listenOps(
  app: App,
  port: number,
  ops: ReturnType<typeof opsPlugin>,
  started: { opsServer?: FastifyInstance },
): Promise<string> {
  const { config, logger } = app;
  const opsServer = (started.opsServer = Fastify({ logger: false }));
  await opsServer.register(ops);
  const address = await listening(
    () => opsServer.listen({ host: config.webhook.host, port }),
    `${config.webhook.host}:${port}`,
    'WEBHOOK_HOST, --ops-port',
  );
  logger.info({ address }, 'health and metrics listening');
  return address;
}
