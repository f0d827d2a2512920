/**
 * The long-running service: the roles `webhook`, `worker` and `scheduler` over one app (./app.ts),
 * started in order and stopped in the reverse order. `expeed-sync run` starts it. This file only
 * orders the steps; each is in ./service-parts.ts.
 */
import type { FastifyInstance } from 'fastify';
import type { Queue } from 'bullmq';
import type { Config } from '../base/config.js';
import type { Logger } from '../base/log.js';
import type { SecretScrubber } from '../base/secrets.js';
import { createMetrics, type Metrics } from '../ops/metrics.js';
import { Heartbeat } from '../pull/heartbeat.js';
import type { QueuedWindow } from '../pull/backfill-queue.js';
import type { Scheduler } from '../pull/scheduler.js';
import type { WebhookServer } from '../push/server.js';
import { SettingTimeoutSweep } from '../settings/timeout-sweep.js';
import { RedisPersistenceWatch } from '../ops/redis-persistence.js';
import { createApp, type App, type WebhookIntake } from './app.js';
import {
  closeWithin,
  influxReady,
  listenOps,
  listenWebhook,
  loadDevices,
  opsPlugin,
  releaseCooldownWaits,
  startScheduling,
  startWorkers,
  type RunningWorker,
} from './service-parts.js';

export { ListenError } from './service-parts.js';

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
  app: App;
  /** windows queued at start for devices that were never synced, or for the missed window after an outage */
  startupBackfills: QueuedWindow[];
  /** the ordered shutdown: stop accepting (HTTP, cron), workers finish or stop within the grace, then the app (queues, writer, Redis) */
  close(): Promise<void>;
}

/** What has started so far: a failed start stops exactly these, in the same order as a normal stop. */
interface Started {
  webhook?: WebhookServer;
  opsServer?: FastifyInstance;
  scheduler?: Scheduler;
  rollupDispatcher?: { close(): Promise<void> };
  heartbeat?: Heartbeat;
  settingSweep?: SettingTimeoutSweep;
  /** warns when Redis has no persistence or came back empty, at start and on every reconnect */
  persistence?: RedisPersistenceWatch;
  workers: RunningWorker[];
  /** the webhook's queue, dead letters and nonces (the app closes them) */
  intake?: WebhookIntake;
}

/** Stop accepting, stop scheduling, let the workers finish (or stop them at once), then close the app. */
async function shutdown(app: App, started: Started, force: boolean, graceMs: number): Promise<void> {
  const { webhook, opsServer, scheduler, rollupDispatcher, heartbeat, settingSweep } = started;
  const steps: Array<[string, (() => Promise<void>) | undefined]> = [
    ['webhook', webhook && (() => webhook.close())],
    ['ops http', opsServer && (() => opsServer.close())],
    ['scheduler', scheduler && (() => scheduler.close())],
    ['rollup dispatch', rollupDispatcher && (() => rollupDispatcher.close())],
    ['heartbeat', heartbeat && (async () => heartbeat.close())],
    ['setting timeout sweep', settingSweep && (() => settingSweep.stop())],
    ['redis persistence watch', started.persistence && (async () => started.persistence!.stop())],
    [
      'workers',
      async () =>
        void (await Promise.all(
          started.workers.splice(0).map((w) => (force ? w.close(true) : closeWithin(w, graceMs))),
        )),
    ],
    ['app', () => app.close()],
  ];
  for (const [name, close] of steps) {
    if (!close) continue;
    try {
      await close();
      app.logger.debug({ component: name }, 'stopped');
    } catch (err) {
      app.logger.warn({ err, component: name }, 'shutdown step failed; going on with the next');
    }
  }
}

export async function startService(options: ServiceOptions): Promise<Service> {
  const { config, logger, scrubber, roles } = options;
  const graceMs = options.shutdownGraceMs ?? 20_000;
  const metrics = createMetrics();
  const app = createApp(config, { logger, scrubber, metrics });
  const started: Started = { workers: [] };
  try {
    await (started.persistence = new RedisPersistenceWatch({
      redis: app.redis,
      prefix: config.prefix,
      logger,
    })).start();
    if (roles.has('worker') || roles.has('scheduler')) await influxReady(app);
    await loadDevices(app);
    if (roles.has('worker')) {
      await releaseCooldownWaits(app);
      started.workers = startWorkers(app);
      started.settingSweep = new SettingTimeoutSweep({ pending: app.settings, writer: app.writer, logger });
      started.settingSweep.start();
    }
    // the heartbeat says "the installation was pulling": the scheduler and the workers keep it
    const heartbeat =
      roles.has('scheduler') || roles.has('worker')
        ? new Heartbeat({
            redis: app.redis,
            prefix: config.prefix,
            onError: (err) => logger.warn({ err }, 'heartbeat failed'),
          })
        : undefined;
    const startupBackfills = heartbeat && roles.has('scheduler') ? await startScheduling(app, heartbeat, started) : [];
    // after catch-up has read the previous beat
    if (heartbeat) (started.heartbeat = heartbeat).start();

    const queues: Queue[] = [app.backfillQueue as Queue, app.statusQueue as Queue, app.rollup.queue as Queue];
    if (roles.has('webhook')) {
      started.intake = await app.webhookIntake();
      queues.push(started.intake.ingest.queue as Queue);
    }
    const ops = opsPlugin(app, started.workers, queues, started.intake);
    let address: string | undefined;
    if (started.intake) address = await listenWebhook(app, started.intake, ops, started);
    else if (options.opsPort) address = await listenOps(app, options.opsPort, ops, started);
    return { address, metrics, app, startupBackfills, close: () => shutdown(app, started, false, graceMs) };
  } catch (err) {
    await shutdown(app, started, true, graceMs);
    throw err;
  }
}
