import { all, flag, one, parseArgs, UsageError } from '../args.js';
import type { Command } from '../command.js';
import type { CommandContext } from '../context.js';
import type { App } from '../../app/app.js';
import type { Device } from '../../devices/registry.js';
import { checkRangeSize, readRange, VERIFY_LIMIT } from '../range.js';
import { bar } from '../progress-view.js';
import { zoneOffsetMs } from '../../platform/timestamp.js';
import { formatLocalTime } from '../../platform/time-format.js';
import { walkHistory } from '../../platform/history-walker.js';
import {
  totalsOf,
  verifyDevice,
  VerifyLedger,
  type DeviceVerification,
  type VerifiedHour,
} from '../../pull/verify-run.js';

const USAGE = 'verify [--device ID]... [--from T] [--to T] [--repair] [--json]';
/** the range verified when --from is not given */
const DEFAULT_SPAN_MS = 7 * 86_400_000;
/** differing hours listed with their examples in the text output */
const LISTED_HOURS = 20;

/**
 * Re-reads a range from the platform (through the app's rate-limited client and shared token) with
 * the backfill's walk and compares it with InfluxDB hour by hour; `--repair` writes what is missing
 * or different through the one write path, deletes extra points, and compares again. Exit 0 only
 * when every hour is equal (after the repair); 1 otherwise.
 */
export const command: Command = {
  usage: USAGE,
  summary:
    'compare a range (default: the last 7 days, every device) with the platform hour by hour: equal, rows missing, points extra, values differing; --repair writes what is missing or different (rollups re-marked) and deletes extra points, then verifies again; exit 0 only when equal',
  async run(argv, ctx) {
    const args = parseArgs(argv, { values: ['device', 'from', 'to'], flags: ['repair', 'json'] });
    if (args.positionals.length) throw new UsageError(`unexpected argument "${args.positionals[0]}" (${USAGE})`);
    const { config } = ctx;
    const tz = config.timezone;
    const range = readRange(one(args, 'from'), one(args, 'to'), {
      timezone: tz,
      defaultFrom: (end) => end - DEFAULT_SPAN_MS,
    });
    const { to, capped } = range;
    const from = range.from!;
    const repair = flag(args, 'repair');
    const json = flag(args, 'json');
    // --json prints one JSON document: the capping line goes to stderr there
    if (capped) json ? process.stderr.write(`${capped}\n`) : ctx.out(capped);
    const devices = await chosenDevices(ctx, all(args, 'device'));
    checkRangeSize(
      devices.map((d) => ({ deviceId: d.id, from, to })),
      VERIFY_LIMIT,
    );
    const app = await ctx.app();
    const results = await verifyDevices(ctx, app, devices, { from, to, repair, json });
    const totals = totalsOf(results.flatMap((r) => r.hours));
    await new VerifyLedger(app.redis, config.prefix).record({
      at: Date.now(),
      devices: devices.length,
      from,
      to,
      ...totals,
    });
    const equal = totals.missing + totals.extra + totals.differing === 0;

    if (json) {
      ctx.out(
        JSON.stringify({
          from,
          to,
          repair,
          equal,
          totals,
          devices: results.map((r) => ({ ...r, hours: r.hours.filter((h) => h.result !== 'equal') })),
        }),
      );
      return equal ? 0 : 1;
    }
    printResults(ctx, results, { repair, timezone: tz });
    return equal ? 0 : 1;
  },
};

/** The registered devices named by --device (each must be registered), or all of them; at least one. */
async function chosenDevices(ctx: CommandContext, wanted: string[]): Promise<Device[]> {
  const { config } = ctx;
  const registry = ctx.registry();
  if (config.devicesFile) await registry.mergeFile(config.devicesFile);
  const registered = await registry.list();
  for (const id of wanted)
    if (!registered.some((d) => d.id === id))
      throw new Error(`device "${id}" is not in the registry (expeed-sync devices list)`);
  const devices = wanted.length ? registered.filter((d) => wanted.includes(d.id)) : registered;
  if (devices.length === 0) throw new Error('no device in the registry: nothing to verify');
  return devices;
}

/**
 * Verifies (and with `repair` repairs) each device in turn over the range, through the app's
 * platform client, InfluxDB and writer; progress as a bar on a terminal, as lines otherwise, none with --json.
 */
async function verifyDevices(
  ctx: CommandContext,
  app: App,
  devices: Device[],
  run: { from: number; to: number; repair: boolean; json: boolean },
): Promise<DeviceVerification[]> {
  const { config } = ctx;
  const { from, to, repair, json } = run;
  const options = {
    walk: (
      device: { id: string; key: string },
      range: { from: number; to: number; limit: number },
      call?: { useReserve?: boolean; signal?: AbortSignal },
    ) => walkHistory(app.platform, device, { ...range, call }),
    query: app.influx,
    writer: app.writer,
    markHours: (touched: Map<string, number[]>) => app.rollup.dirty.mark(touched, { manual: true }),
    pageLimit: config.pageLimit,
    windowMs: config.backfillWindowMs,
    gridOffset: (t: number) => zoneOffsetMs(t, config.timezone),
  };
  const tty = process.stdout.isTTY === true && !json;
  const totalHours = devices.length * Math.ceil((to - from) / 3_600_000);
  let doneHours = 0;
  const results: DeviceVerification[] = [];
  for (const d of devices) {
    const v = await verifyDevice(options, { id: d.id, key: d.key }, from, to, {
      repair,
      call: { useReserve: true },
      onWindow: (hours) => {
        doneHours += hours.length;
        const line = `${d.id}: ${doneHours}/${totalHours} hours verified`;
        if (tty) process.stdout.write(`\r${bar(doneHours / Math.max(1, totalHours), 30)} ${line}`);
        else if (!json) ctx.out(line);
      },
    });
    results.push(v);
  }
  if (tty) process.stdout.write('\n');
  return results;
}

/** The text output: a table per device, the first LISTED_HOURS hours not equal with examples, the verdict. */
function printResults(
  ctx: Pick<CommandContext, 'out'>,
  results: DeviceVerification[],
  run: { repair: boolean; timezone: string },
): void {
  const { repair, timezone: tz } = run;
  const hours = results.flatMap((r) => r.hours);
  const totals = totalsOf(hours);
  const equal = totals.missing + totals.extra + totals.differing === 0;
  ctx.out('');
  ctx.out('device            hours  equal  missing  extra  differing  repaired  written  removed');
  for (const r of results) {
    const t = totalsOf(r.hours);
    ctx.out(
      `${r.deviceId.padEnd(16)}  ${String(r.hours.length).padStart(5)}  ${String(t.equal).padStart(5)}  ${String(t.missing).padStart(7)}  ${String(t.extra).padStart(5)}  ${String(t.differing).padStart(9)}  ${String(t.repaired).padStart(8)}  ${String(r.written).padStart(7)}  ${String(r.removed).padStart(7)}`,
    );
  }
  const listed: VerifiedHour[] = hours.filter((h) => h.result !== 'equal').slice(0, LISTED_HOURS);
  for (const h of listed) {
    ctx.out(
      `${h.deviceId} ${formatLocalTime(h.hour, tz)}: ${h.repaired ? 'repaired, was ' : ''}${h.result} (missing ${h.missing}, extra ${h.extra}, differing ${h.differing})`,
    );
    for (const e of h.examples) ctx.out(`    ${e}`);
  }
  if (repair) {
    const written = results.reduce((n, r) => n + r.written, 0);
    const removed = results.reduce((n, r) => n + r.removed, 0);
    ctx.out(
      `repair: wrote ${written} point(s) from the platform; removed ${removed} point(s) from device_data that the platform does not hold (or that held fields the platform row lacks, then rewritten)`,
    );
  } else if (totals.extra) {
    ctx.out('extra points are only reported; --repair deletes them');
  }
  ctx.out(
    equal
      ? `equal: ${totals.equal + totals.repaired} hour(s) equal${totals.repaired ? `, ${totals.repaired} of them repaired` : ''}`
      : `not equal: ${totals.missing} hour(s) with rows missing, ${totals.extra} with extra points, ${totals.differing} with values differing${repair ? '' : ' (--repair fixes them)'}`,
  );
}
