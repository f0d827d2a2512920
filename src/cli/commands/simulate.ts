/**
 * `expeed-sync simulate`: runs the platform simulator as a local stand-in for the Expeed cloud,
 * for demos and manual testing, until SIGINT/SIGTERM. It needs no Redis or InfluxDB. With
 * --push-url, newly generated rows are also pushed there (msg_type 2), as the platform does.
 */
import { writeFileSync } from 'node:fs';
import { flag, one, parseArgs, UsageError } from '../args.js';
import type { Command } from '../command.js';
import { resolveHistoryReading, startSimulator, TIMESTAMP_FORMS } from '../../simulator/index.js';

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

export const command: Command = {
  usage: USAGE,
  summary: 'run the platform simulator (a local stand-in for the Expeed cloud) until Ctrl-C',
  standalone: true,
  async run(argv, ctx) {
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
    const port = int(one(args, 'port'), 'port', 8781, 0, 65535);
    const deviceCount = int(one(args, 'devices'), 'devices', 5, 1, 10_000);
    const days = int(one(args, 'days'), 'days', 7, 0, 3650);
    const pushEvery = int(one(args, 'push-every'), 'push-every', 10, 1, 86_400);
    const seed = int(one(args, 'seed'), 'seed', 1, 0, 2 ** 32 - 1);
    const pushUrl = one(args, 'push-url');
    if (pushUrl !== undefined && !/^https?:\/\//.test(pushUrl))
      throw new UsageError(`--push-url must be an http(s) URL, got "${pushUrl}"`);
    const platformKey = one(args, 'platform-key') ?? 'demo-platform-key';
    const secretKey = one(args, 'secret-key') ?? 'demo-secret-key';
    const timezone = one(args, 'timezone') ?? ctx.config.timezone;
    const webhookToken = one(args, 'webhook-token') ?? ctx.config.webhook.token;
    // how history paging reads the open points of the vendor document (docs/platform-api.md §2.3)
    const bounds = ['inclusive', 'exclusive'] as const;
    const history = {
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
    const timestampForm = choice(one(args, 'timestamp-form'), 'timestamp-form', TIMESTAMP_FORMS);
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
      history,
      timestampForm,
      sameMsRate,
      sameMsRepeat,
      deviceFailRate,
      deviceFailKind,
      latencyMs,
      logger: {
        info: (obj, msg) => log.info(obj as object, String(msg ?? '')),
        warn: (obj, msg) => log.warn(obj as object, String(msg ?? '')),
      },
    });
    ctx.onClose(() => sim.close());
    if (throttleRate) sim.faults.throttleRate = throttleRate;
    if (throttleStatus) sim.faults.throttleStatus = Number(throttleStatus) as 429 | 503;
    if (retryAfter !== undefined) sim.faults.throttleRetryAfter = retryAfter;
    const devicesFile = one(args, 'write-devices');
    if (devicesFile)
      writeFileSync(
        devicesFile,
        `${JSON.stringify(
          sim.devices.map((d) => ({ id: d.id, key: d.key })),
          null,
          2,
        )}\n`,
      );

    ctx.out(
      `platform simulator listening on ${sim.url} (${days} days of history, ${deviceCount} devices, zone ${timezone})`,
    );
    const r = resolveHistoryReading({ history });
    ctx.out(
      `history paging: cursor ${r.cursor}, limit counts ${r.limit}, start ${r.start}, end ${r.end}` +
        `${r.order === 'asked' ? '' : `, pages ${r.order}`}${r.pageCap ? `, at most ${r.pageCap} rows a page` : ''}${timestampForm && timestampForm !== 'documented' ? `, timestamps ${timestampForm}` : ''}` +
        `${sameMsRate ? `, ${sameMsRate} of rows split at one millisecond${sameMsRepeat ? ' (A, B, A)' : ''}` : ''}${deviceFailRate ? `, ${deviceFailRate} of device calls fail (${deviceFailKind ?? 'mixed'})` : ''}${latencyMs ? `, +${latencyMs} ms per answer` : ''}` +
        `${throttleRate ? `, ${throttleRate} of device calls answer HTTP ${sim.faults.throttleStatus} with Retry-After: ${sim.faults.throttleRetryAfter}` : ''}`,
    );
    ctx.out('point expeed-sync at it with:');
    ctx.out(`  EXPEED_BASE_URL=${sim.url}`);
    ctx.out(`  EXPEED_PLATFORM_KEY=${platformKey}`);
    ctx.out(`  EXPEED_SECRET_KEY=${secretKey}`);
    if (devicesFile) ctx.out(`  EXPEED_DEVICES_FILE=${devicesFile}`);
    ctx.out('devices (id  key):');
    for (const d of sim.devices) ctx.out(`  ${d.id}  ${d.key}`);
    ctx.out(
      pushUrl
        ? `pushing new rows to ${pushUrl} every ${pushEvery} s${webhookToken ? ' (after the signed handshake)' : ''}`
        : 'no --push-url: nothing is pushed',
    );
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
        `${s.historyRowsServed} history rows served, ${s.pushes.length} pushes, ${s.deviceFailures['502'] + s.deviceFailures.reset} failed on purpose, ${s.violations.length} violations`,
    );
    for (const v of s.violations.slice(0, 20)) ctx.out(`  violation: ${v}`);
    return 0;
  },
};
