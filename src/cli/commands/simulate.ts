/**
 * `expeed-sync simulate`: runs the platform simulator as a local stand-in for the Expeed cloud,
 * for demos and manual testing, until SIGINT/SIGTERM. It needs no Redis or InfluxDB. With
 * --push-url, newly generated rows are also pushed there (msg_type 2), as the platform does.
 */
import { writeFileSync } from 'node:fs';
import type { Config } from '../../base/config.js';
import type { Logger } from '../../base/log.js';
import { flag, one, parseArgs, UsageError, type ParsedArgs } from '../args.js';
import type { Command } from '../command.js';
import type { CommandContext } from '../context.js';
import {
  resolveHistoryReading,
  startSimulator,
  TIMESTAMP_FORMS,
  type Simulator,
  type SimulatorOptions,
  type SimulatorStats,
} from '../../simulator/index.js';

const USAGE =
  'simulate [--port N] [--host H] [--devices N] [--days D] [--platform-key K] [--secret-key S] [--push-url URL] [--webhook-token T] [--push-every SEC] [--seed N] [--timezone TZ] [--write-devices FILE]' +
  ' [--cursor next|last-inclusive|last-exclusive|first-row|none] [--limit-unit rows|datapoints] [--start-bound inclusive|exclusive] [--end-bound inclusive|exclusive]' +
  ' [--order asked|newest-first|inverted|unordered] [--page-cap N] [--timestamp-form documented|epoch-ms|epoch-s|epoch-ms-string|iso-z|iso-offset|iso-local]' +
  ' [--same-ms-rate P] [--same-ms-repeat] [--fail-rate P] [--fail-kind 502|reset|mixed] [--latency-ms N] [--throttle-rate P] [--throttle-status 429|503] [--retry-after SEC|HTTP-DATE]';

const DAY_MS = 86_400_000;

function int(raw: string | undefined, name: string, dflt: number, min: number, max: number): number {
  if (raw === undefined) return dflt;
  if (!/^\d+$/.test(raw)) throw new UsageError(`--${name} must be a whole number, got "${raw}"`);
  const n = Number(raw);
  if (n < min || n > max) throw new UsageError(`--${name} must be between ${min} and ${max}, got ${n}`);
  return n;
}

function choice<T extends string>(raw: string | undefined, name: string, choices: readonly T[]): T | undefined {
  if (raw === undefined) return undefined;
  if (!choices.includes(raw as T)) throw new UsageError(`--${name} must be one of ${choices.join(', ')}, got "${raw}"`);
  return raw as T;
}

function rate(raw: string | undefined, name: string, max: number): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n) || n < 0 || n > max)
    throw new UsageError(`--${name} must be a number from 0 to ${max}, got "${raw}"`);
  return n;
}

function pushUrlFlag(args: ParsedArgs): string | undefined {
  const pushUrl = one(args, 'push-url');
  if (pushUrl !== undefined && !/^https?:\/\//.test(pushUrl))
    throw new UsageError(`--push-url must be an http(s) URL, got "${pushUrl}"`);
  return pushUrl;
}

/** How history paging reads the open points of the vendor document (docs/platform-api.md §2.3). */
function historyFlags(args: ParsedArgs) {
  const bounds = ['inclusive', 'exclusive'] as const;
  return {
    cursor: choice(one(args, 'cursor'), 'cursor', [
      'next',
      'last-inclusive',
      'last-exclusive',
      'first-row',
      'none',
    ] as const),
    limit: choice(one(args, 'limit-unit'), 'limit-unit', ['rows', 'datapoints'] as const),
    start: choice(one(args, 'start-bound'), 'start-bound', bounds),
    end: choice(one(args, 'end-bound'), 'end-bound', bounds),
    order: choice(one(args, 'order'), 'order', ['asked', 'newest-first', 'inverted', 'unordered'] as const),
    pageCap: int(one(args, 'page-cap'), 'page-cap', 0, 0, 6000),
  };
}

/** The faults served from the start: split milliseconds, failing device calls, latency, throttling. */
function faultFlags(args: ParsedArgs) {
  const sameMsRate = rate(one(args, 'same-ms-rate'), 'same-ms-rate', 1);
  const sameMsRepeat = flag(args, 'same-ms-repeat');
  if (sameMsRepeat && !sameMsRate)
    throw new UsageError(
      '--same-ms-repeat repeats a part of the rows --same-ms-rate splits: give --same-ms-rate above 0 too',
    );
  const deviceFailRate = rate(one(args, 'fail-rate'), 'fail-rate', 0.99);
  const deviceFailKind = choice(one(args, 'fail-kind'), 'fail-kind', ['502', 'reset', 'mixed'] as const);
  const latencyMs = int(one(args, 'latency-ms'), 'latency-ms', 0, 0, 60_000);
  const throttleRate = rate(one(args, 'throttle-rate'), 'throttle-rate', 0.99);
  const throttleStatus = choice(one(args, 'throttle-status'), 'throttle-status', ['429', '503'] as const);
  const retryAfter = one(args, 'retry-after');
  if (retryAfter !== undefined && !/^\d+$/.test(retryAfter) && Number.isNaN(Date.parse(retryAfter))) {
    throw new UsageError(
      `--retry-after must be whole seconds or an HTTP date (e.g. "Tue, 08 Dec 2026 01:30:00 GMT"), got "${retryAfter}"`,
    );
  }
  return {
    sameMsRate,
    sameMsRepeat,
    deviceFailRate,
    deviceFailKind,
    latencyMs,
    throttleRate,
    throttleStatus,
    retryAfter,
  };
}

/** Every flag read and checked, in the order they are checked: a UsageError names the first wrong one. */
function simulateFlags(argv: string[], config: Pick<Config, 'timezone' | 'webhook'>) {
  const args = parseArgs(argv, {
    values: [
      'port',
      'host',
      'devices',
      'days',
      'platform-key',
      'secret-key',
      'push-url',
      'webhook-token',
      'push-every',
      'seed',
      'timezone',
      'write-devices',
      'cursor',
      'limit-unit',
      'start-bound',
      'end-bound',
      'same-ms-rate',
      'fail-rate',
      'fail-kind',
      'latency-ms',
      'throttle-rate',
      'throttle-status',
      'retry-after',
      'order',
      'page-cap',
      'timestamp-form',
    ],
    flags: ['same-ms-repeat'],
  });
  if (args.positionals.length) throw new UsageError(`simulate takes no arguments (got "${args.positionals[0]}")`);
  return {
    port: int(one(args, 'port'), 'port', 8781, 0, 65535),
    deviceCount: int(one(args, 'devices'), 'devices', 5, 1, 10_000),
    days: int(one(args, 'days'), 'days', 7, 0, 3650),
    pushEvery: int(one(args, 'push-every'), 'push-every', 10, 1, 86_400),
    seed: int(one(args, 'seed'), 'seed', 1, 0, 2 ** 32 - 1),
    pushUrl: pushUrlFlag(args),
    platformKey: one(args, 'platform-key') ?? 'demo-platform-key',
    secretKey: one(args, 'secret-key') ?? 'demo-secret-key',
    timezone: one(args, 'timezone') ?? config.timezone,
    webhookToken: one(args, 'webhook-token') ?? config.webhook.token,
    history: historyFlags(args),
    timestampForm: choice(one(args, 'timestamp-form'), 'timestamp-form', TIMESTAMP_FORMS),
    ...faultFlags(args),
    host: one(args, 'host') ?? '127.0.0.1',
    devicesFile: one(args, 'write-devices'),
  };
}

type SimulateFlags = ReturnType<typeof simulateFlags>;

/** The simulator's options: `days` of history up to now, growing with the clock, logged as the command's log. */
function simulatorOptions(f: SimulateFlags, log: Logger): SimulatorOptions {
  const now = Date.now();
  return {
    host: f.host,
    port: f.port,
    platformKey: f.platformKey,
    secretKey: f.secretKey,
    timezone: f.timezone,
    devices: f.deviceCount,
    from: now - f.days * DAY_MS,
    to: now,
    seed: f.seed,
    followClock: true,
    pushUrl: f.pushUrl,
    webhookToken: f.webhookToken,
    livePushMs: f.pushUrl ? f.pushEvery * 1000 : undefined,
    history: f.history,
    timestampForm: f.timestampForm,
    sameMsRate: f.sameMsRate,
    sameMsRepeat: f.sameMsRepeat,
    deviceFailRate: f.deviceFailRate,
    deviceFailKind: f.deviceFailKind,
    latencyMs: f.latencyMs,
    logger: {
      info: (obj, msg) => log.info(obj as object, String(msg ?? '')),
      warn: (obj, msg) => log.warn(obj as object, String(msg ?? '')),
    },
  };
}

function throttle(sim: Simulator, f: SimulateFlags): void {
  if (f.throttleRate) sim.faults.throttleRate = f.throttleRate;
  if (f.throttleStatus) sim.faults.throttleStatus = Number(f.throttleStatus) as 429 | 503;
  if (f.retryAfter !== undefined) sim.faults.throttleRetryAfter = f.retryAfter;
}

/** One line: how history pages are read and which faults are served. */
function pagingLine(sim: Simulator, f: SimulateFlags): string {
  const r = resolveHistoryReading({ history: f.history });
  return (
    `history paging: cursor ${r.cursor}, limit counts ${r.limit}, start ${r.start}, end ${r.end}` +
    `${r.order === 'asked' ? '' : `, pages ${r.order}`}${r.pageCap ? `, at most ${r.pageCap} rows a page` : ''}${f.timestampForm && f.timestampForm !== 'documented' ? `, timestamps ${f.timestampForm}` : ''}` +
    `${f.sameMsRate ? `, ${f.sameMsRate} of rows split at one millisecond${f.sameMsRepeat ? ' (A, B, A)' : ''}` : ''}${f.deviceFailRate ? `, ${f.deviceFailRate} of device calls fail (${f.deviceFailKind ?? 'mixed'})` : ''}${f.latencyMs ? `, +${f.latencyMs} ms per answer` : ''}` +
    `${f.throttleRate ? `, ${f.throttleRate} of device calls answer HTTP ${sim.faults.throttleStatus} with Retry-After: ${sim.faults.throttleRetryAfter}` : ''}`
  );
}

/** Where the simulator listens, how it reads history, the variables to point expeed-sync at it, the devices. */
function banner(ctx: Pick<CommandContext, 'out'>, sim: Simulator, f: SimulateFlags): void {
  ctx.out(
    `platform simulator listening on ${sim.url} (${f.days} days of history, ${f.deviceCount} devices, zone ${f.timezone})`,
  );
  ctx.out(pagingLine(sim, f));
  ctx.out('point expeed-sync at it with:');
  ctx.out(`  EXPEED_BASE_URL=${sim.url}`);
  ctx.out(`  EXPEED_PLATFORM_KEY=${f.platformKey}`);
  ctx.out(`  EXPEED_SECRET_KEY=${f.secretKey}`);
  if (f.devicesFile) ctx.out(`  EXPEED_DEVICES_FILE=${f.devicesFile}`);
  ctx.out('devices (id  key):');
  for (const d of sim.devices) ctx.out(`  ${d.id}  ${d.key}`);
  ctx.out(
    f.pushUrl
      ? `pushing new rows to ${f.pushUrl} every ${f.pushEvery} s${f.webhookToken ? ' (after the signed handshake)' : ''}`
      : 'no --push-url: nothing is pushed',
  );
  ctx.out('press Ctrl-C to stop');
}

/** Resolves with the name of the first SIGINT or SIGTERM. */
function stopSignal(): Promise<string> {
  return new Promise<string>((resolve) => {
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
}

/** What the simulator served, and the first 20 requests the real API would have refused. */
function summary(ctx: Pick<CommandContext, 'out'>, signal: string, s: SimulatorStats): void {
  ctx.out(
    `stopped (${signal}): ${s.tokenCalls} token calls, ${Object.values(s.requests).reduce((a, b) => a + b, 0)} requests, ` +
      `${s.historyRowsServed} history rows served, ${s.pushes.length} pushes, ${s.deviceFailures['502'] + s.deviceFailures.reset} failed on purpose, ${s.violations.length} violations`,
  );
  for (const v of s.violations.slice(0, 20)) ctx.out(`  violation: ${v}`);
}

export const command: Command = {
  usage: USAGE,
  summary: 'run the platform simulator (a local stand-in for the Expeed cloud) until Ctrl-C',
  standalone: true,
  async run(argv, ctx) {
    const f = simulateFlags(argv, ctx.config);
    const sim = await startSimulator(simulatorOptions(f, ctx.log.child({ component: 'simulator' })));
    ctx.onClose(() => sim.close());
    throttle(sim, f);
    if (f.devicesFile)
      writeFileSync(
        f.devicesFile,
        `${JSON.stringify(
          sim.devices.map((d) => ({ id: d.id, key: d.key })),
          null,
          2,
        )}\n`,
      );
    banner(ctx, sim, f);
    const signal = await stopSignal();
    await sim.close();
    summary(ctx, signal, sim.stats);
    return 0;
  },
};
