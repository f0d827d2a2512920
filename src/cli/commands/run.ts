import { all, one, parseArgs, UsageError } from '../args.js';
import type { Command } from '../command.js';
import type { CommandContext } from '../context.js';
import { setFlagsFromString } from 'node:v8';
import { WEBHOOK_SEMI_SPACE_MB, type Config } from '../../base/config.js';
import { parseDuration } from '../../base/env-readers.js';
import { ROLES, startService, type Role, type Service } from '../../app/service.js';
import { startSimulator, type Simulator } from '../../simulator/index.js';
import { BackfillTracker } from '../progress.js';
import { plainLine, terminalLines } from '../progress-view.js';

/**
 * The young generation (EXPEED_SEMI_SPACE_MB): a larger one lets the short-lived objects of pushes
 * (parsed bodies, ingest jobs, points) die young instead of being promoted and left to full GCs —
 * measured 15 % less CPU per push for ~30 MB more memory (docs/benchmarks.md). 0 = V8's default.
 */
export function applySemiSpace(mb: number): void {
  if (mb > 0) setFlagsFromString(`--max-semi-space-size=${mb}`);
}

const USAGE = 'run [--role webhook|worker|scheduler]... [--shutdown-grace 20s] [--ops-port N]';

const DEMO = {
  platformKey: 'demo-platform-key',
  secretKey: 'demo-secret-key',
  webhookToken: 'demo-webhook-token',
  devices: 5,
};

/**
 * Without platform credentials the service runs against the built-in platform simulator, in this
 * process: five devices with history from EXPEED_BACKFILL_START and live pushes to our webhook.
 */
async function startDemoPlatform(config: Config, ctx: CommandContext): Promise<{ config: Config; sim: Simulator }> {
  const { host, port, path } = config.webhook;
  const webhookToken = config.webhook.token ?? DEMO.webhookToken;
  const sim = await startSimulator({
    platformKey: DEMO.platformKey,
    secretKey: DEMO.secretKey,
    timezone: config.timezone,
    devices: DEMO.devices,
    from: config.backfillStart,
    to: Date.now(),
    followClock: true,
    pushUrl: `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}${path}`,
    webhookToken,
    livePushMs: 15_000,
  });
  const registry = ctx.registry();
  for (const d of sim.devices)
    if (!(await registry.get(d.id))) await registry.upsert({ id: d.id, key: d.key, name: `simulated ${d.id}` }, 'cli');
  ctx.log.warn(
    { simulator: sim.url, devices: sim.devices.length },
    'no EXPEED_PLATFORM_KEY/EXPEED_SECRET_KEY set: running against the built-in platform simulator (demo mode)',
  );
  return {
    sim,
    config: {
      ...config,
      baseUrl: sim.url,
      platformKey: DEMO.platformKey,
      secretKey: DEMO.secretKey,
      webhook: { ...config.webhook, token: webhookToken },
    },
  };
}

async function showFirstSync(service: Service, ctx: CommandContext, stopped: () => boolean): Promise<void> {
  const tracker = new BackfillTracker(service.app.backfillQueue, service.startupBackfills);
  const tty = process.stderr.isTTY === true;
  const started = Date.now();
  let drawn = 0;
  let lastPlain = 0;
  while (!stopped()) {
    const snap = await tracker.poll();
    const elapsed = Date.now() - started;
    if (tty) {
      const lines = [
        'first sync:',
        ...terminalLines(snap, elapsed, { width: process.stderr.columns ?? 120, maxDevices: 8 }),
      ];
      process.stderr.write(`${drawn ? `\x1b[${drawn}A` : ''}${lines.map((l) => `\x1b[2K${l}\n`).join('')}`);
      drawn = lines.length;
    } else if (snap.finished || Date.now() - lastPlain >= 5000) {
      process.stderr.write(`first sync: ${plainLine(snap, elapsed)}\n`);
      lastPlain = Date.now();
    }
    if (snap.finished) {
      const db = ctx.config.influx.bucket;
      const failures = snap.failures.map((f) => `  ${f.deviceId}: ${ctx.scrubber.scrub(f.reason)}`).join('\n');
      process.stderr.write(
        [
          failures
            ? `first sync finished with failures:\n${failures}`
            : 'first sync finished: the history is in InfluxDB.',
          'Where to look:',
          `  curl -sG ${ctx.config.influx.url}/query --data-urlencode db=${db} --data-urlencode "q=SELECT count(*) FROM device_data GROUP BY device_id"`,
          `  curl -sG ${ctx.config.influx.url}/query --data-urlencode db=${db} --data-urlencode "q=SELECT * FROM device_data GROUP BY device_id ORDER BY time DESC LIMIT 3"`,
          '  npx expeed-sync status    (devices, queues, token budget, dead letters; in another terminal)',
          '  docker compose --profile demo up   (Grafana with the provisioned dashboard on http://localhost:3000)',
          `  http://${ctx.config.webhook.host}:${ctx.config.webhook.port}/metrics and /readyz`,
          'The service keeps running (nightly sync, status polls, gap checks, pushes); Ctrl-C stops it.',
          '',
        ].join('\n'),
      );
      return;
    }
    await new Promise((r) => setTimeout(r, tty ? 500 : 1000));
  }
}

export const command: Command = {
  usage: USAGE,
  waitsForRedis: true,
  summary:
    'the long-running service; all roles when none is named (demo against the built-in simulator without credentials)',
  async run(argv, ctx) {
    const args = parseArgs(argv, { values: ['role', 'shutdown-grace', 'ops-port'] });
    if (args.positionals.length) throw new UsageError(`unexpected argument "${args.positionals[0]}" (${USAGE})`);
    const named = all(args, 'role');
    for (const r of named)
      if (!(ROLES as readonly string[]).includes(r))
        throw new UsageError(`--role must be one of ${ROLES.join(', ')} (got "${r}")`);
    const roles = new Set<Role>(named.length ? (named as Role[]) : ROLES);
    const graceArg = one(args, 'shutdown-grace');
    const grace = graceArg === undefined ? 20_000 : parseDuration(graceArg);
    if (grace === undefined)
      throw new UsageError(`--shutdown-grace expects a duration such as 20s (got "${graceArg}")`);
    const opsArg = one(args, 'ops-port');
    const opsPort = opsArg === undefined ? undefined : Number(opsArg);
    if (opsPort !== undefined && !(Number.isInteger(opsPort) && opsPort >= 0 && opsPort < 65536))
      throw new UsageError(`--ops-port expects a port number (got "${opsArg}")`);

    let config = ctx.config;
    let sim: Simulator | undefined;
    if (!config.platformKey) ({ config, sim } = await startDemoPlatform(config, ctx));
    else if (config.devicesFile === undefined && (await ctx.registry().list()).length === 0) {
      ctx.log.warn(
        'no devices registered: add them with `expeed-sync devices add ID --key KEY` or EXPEED_DEVICES_FILE; pushes with a device_key register theirs',
      );
    }

    let stopping = false;
    let service: Service | undefined;
    let stopped!: () => void;
    const done = new Promise<void>((resolve) => (stopped = resolve));
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) {
        ctx.log.warn({ signal }, 'second signal: exiting at once');
        process.exit(130);
      }
      stopping = true;
      ctx.log.info(
        { signal, graceMs: grace },
        'shutting down: no new requests or jobs; running jobs finish or stop at a checkpoint',
      );
      stopped();
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);

    try {
      // a bigger young generation where pushes arrive (see applySemiSpace), V8's default elsewhere:
      // a backfill worker gains nothing from it and stays smaller
      applySemiSpace(config.semiSpaceMb ?? (roles.has('webhook') ? WEBHOOK_SEMI_SPACE_MB : 0));
      service = await startService({
        config,
        logger: ctx.log,
        scrubber: ctx.scrubber,
        roles,
        shutdownGraceMs: grace,
        opsPort,
      });
      ctx.log.info(
        { roles: [...roles], address: service.address, prefix: config.prefix, influx: config.influx.url },
        'expeed-sync running',
      );
      if (service.startupBackfills.length && !stopping) void showFirstSync(service, { ...ctx, config }, () => stopping);
      await done;
    } finally {
      await service?.close();
      await sim?.close();
      // after a failed start nobody waits for a signal any more: the default (exit) applies again
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
    }
    ctx.log.info('stopped');
    return 0;
  },
};
