/**
 * `expeed-sync simulate`: runs the platform simulator as a local stand-in for the Expeed cloud,
 * for demos and manual testing, until SIGINT/SIGTERM. It needs no Redis or InfluxDB. With
 * --push-url, newly generated rows are also pushed there (msg_type 2), as the platform does.
 */
import { writeFileSync } from 'node:fs';
import { one, parseArgs, UsageError } from '../args.js';
import type { Command } from '../main.js';
import { startSimulator } from '../../simulator/index.js';

const USAGE =
  'simulate [--port N] [--host H] [--devices N] [--days D] [--platform-key K] [--secret-key S] [--push-url URL] [--webhook-token T] [--push-every SEC] [--seed N] [--timezone TZ] [--write-devices FILE]';

const DAY_MS = 86_400_000;

function int(raw: string | undefined, name: string, dflt: number, min: number, max: number): number {
  if (raw === undefined) return dflt;
  if (!/^\d+$/.test(raw)) throw new UsageError(`--${name} must be a whole number, got "${raw}"`);
  const n = Number(raw);
  if (n < min || n > max) throw new UsageError(`--${name} must be between ${min} and ${max}, got ${n}`);
  return n;
}

export const command: Command = {
  usage: USAGE,
  summary: 'run the platform simulator (a local stand-in for the Expeed cloud) until Ctrl-C',
  standalone: true,
  async run(argv, ctx) {
    const args = parseArgs(argv, {
      values: ['port', 'host', 'devices', 'days', 'platform-key', 'secret-key', 'push-url', 'webhook-token', 'push-every', 'seed', 'timezone', 'write-devices'],
    });
    if (args.positionals.length) throw new UsageError(`simulate takes no arguments (got "${args.positionals[0]}")`);
    const port = int(one(args, 'port'), 'port', 8781, 0, 65535);
    const deviceCount = int(one(args, 'devices'), 'devices', 5, 1, 10_000);
    const days = int(one(args, 'days'), 'days', 7, 0, 3650);
    const pushEvery = int(one(args, 'push-every'), 'push-every', 10, 1, 86_400);
    const seed = int(one(args, 'seed'), 'seed', 1, 0, 2 ** 32 - 1);
    const pushUrl = one(args, 'push-url');
    if (pushUrl !== undefined && !/^https?:\/\//.test(pushUrl)) throw new UsageError(`--push-url must be an http(s) URL, got "${pushUrl}"`);
    const platformKey = one(args, 'platform-key') ?? 'demo-platform-key';
    const secretKey = one(args, 'secret-key') ?? 'demo-secret-key';
    const timezone = one(args, 'timezone') ?? ctx.config.timezone;
    const webhookToken = one(args, 'webhook-token') ?? ctx.config.webhook.token;
    const now = Date.now();
    const log = ctx.log.child({ component: 'simulator' });
    const sim = await startSimulator({
      host: one(args, 'host') ?? '127.0.0.1',
      port,
      platformKey,
      secretKey,
      timezone,
      devices: deviceCount,
      from: now - days * DAY_MS,
      to: now,
      seed,
      followClock: true,
      pushUrl,
      webhookToken,
      livePushMs: pushUrl ? pushEvery * 1000 : undefined,
      logger: {
        info: (obj, msg) => log.info(obj as object, String(msg ?? '')),
        warn: (obj, msg) => log.warn(obj as object, String(msg ?? '')),
      },
    });
    ctx.onClose(() => sim.close());
    const devicesFile = one(args, 'write-devices');
    if (devicesFile) writeFileSync(devicesFile, `${JSON.stringify(sim.devices.map((d) => ({ id: d.id, key: d.key })), null, 2)}\n`);

    ctx.out(`platform simulator listening on ${sim.url} (${days} days of history, ${deviceCount} devices, zone ${timezone})`);
    ctx.out('point expeed-sync at it with:');
    ctx.out(`  EXPEED_BASE_URL=${sim.url}`);
    ctx.out(`  EXPEED_PLATFORM_KEY=${platformKey}`);
    ctx.out(`  EXPEED_SECRET_KEY=${secretKey}`);
    if (devicesFile) ctx.out(`  EXPEED_DEVICES_FILE=${devicesFile}`);
    ctx.out('devices (id  key):');
    for (const d of sim.devices) ctx.out(`  ${d.id}  ${d.key}`);
    ctx.out(pushUrl ? `pushing new rows to ${pushUrl} every ${pushEvery} s${webhookToken ? ' (after the signed handshake)' : ''}` : 'no --push-url: nothing is pushed');
    ctx.out('press Ctrl-C to stop');

    const signal = await new Promise<string>((resolve) => {
      const stop = (s: string) => () => {
        process.off('SIGINT', onInt);
        process.off('SIGTERM', onTerm);
        resolve(s);
      };
      const onInt = stop('SIGINT');
      const onTerm = stop('SIGTERM');
      process.once('SIGINT', onInt);
      process.once('SIGTERM', onTerm);
    });
    await sim.close();
    const s = sim.stats;
    ctx.out(
      `stopped (${signal}): ${s.tokenCalls} token calls, ${Object.values(s.requests).reduce((a, b) => a + b, 0)} requests, ` +
        `${s.historyRowsServed} history rows served, ${s.pushes.length} pushes, ${s.violations.length} violations`,
    );
    for (const v of s.violations.slice(0, 20)) ctx.out(`  violation: ${v}`);
    return 0;
  },
};
