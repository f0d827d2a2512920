import { all, flag, one, parseArgs, UsageError } from '../args.js';
import type { Command } from '../command.js';
import { checkRangeSize, GAPS_LIMIT, readRange } from '../range.js';
import { formatDuration } from '../progress-view.js';
import { formatLocalTime } from '../../platform/time-format.js';
import { GAP_CHUNK_SIZE, gapChunks } from '../../pull/gap-chunks.js';
import type { BackfillJob } from '../../base/jobs.js';

const USAGE = 'gaps [--device ID]... [--from T] [--to T] [--fill]';
const WEEK = 7 * 86_400_000;

export const command: Command = {
  usage: USAGE,
  summary:
    "report holes in a device's data in InfluxDB (default: the last 7 days, all devices); --fill queues backfills for them",
  async run(argv, ctx) {
    const args = parseArgs(argv, { values: ['device', 'from', 'to'], flags: ['fill'] });
    if (args.positionals.length) throw new UsageError(`unexpected argument "${args.positionals[0]}" (${USAGE})`);
    const { config } = ctx;
    const range = readRange(one(args, 'from'), one(args, 'to'), {
      timezone: config.timezone,
      defaultFrom: (end) => end - WEEK,
    });
    const { to, capped } = range;
    const from = range.from!;
    if (capped) ctx.out(capped);

    const registry = ctx.registry();
    if (config.devicesFile) await registry.mergeFile(config.devicesFile);
    const ids = all(args, 'device');
    for (const id of ids) if (!(await registry.get(id))) throw new Error(`device "${id}" is not registered`);
    const devices = ids.length ? ids : (await registry.list()).map((d) => d.id);
    if (devices.length === 0)
      throw new Error('no devices registered (add one with: expeed-sync devices add ID --key KEY)');

    checkRangeSize(
      devices.map((deviceId) => ({ deviceId, from, to })),
      GAPS_LIMIT,
    );
    const stack = await ctx.app();
    const tz = config.timezone;
    let total = 0;
    let queued = 0;
    // the scheduler's chunks: a few GROUP BY "device_id" queries per chunk instead of a few per device
    for (const chunk of gapChunks(devices, GAP_CHUNK_SIZE)) {
      const requests: BackfillJob[] = [];
      for (const found of await stack.gapFinder.scanMany(chunk, from, to)) {
        const id = found.deviceId;
        if (found.note) {
          ctx.out(`${id}: ${found.note}`);
          continue;
        }
        const head = `${id}: cadence ${formatDuration(found.cadenceMs!)}, gaps longer than ${formatDuration(found.thresholdMs!)}`;
        const offline =
          found.offlineMs > 0 ? `; ${formatDuration(found.offlineMs)} without data while offline, not counted` : '';
        ctx.out(`${head}: ${found.gaps.length === 0 ? 'none' : found.gaps.length}${offline}`);
        for (const g of found.gaps)
          ctx.out(
            `  ${formatLocalTime(g.from, tz)} .. ${formatLocalTime(g.to, tz)}  (${formatDuration(g.to - g.from)})`,
          );
        total += found.gaps.length;
        for (const g of found.gaps)
          requests.push({ deviceId: id, from: g.from, to: g.to, reason: 'gap', useReserve: true });
      }
      if (flag(args, 'fill') && requests.length) queued += (await stack.backfills.enqueueMany(requests)).length;
    }
    ctx.out(
      `${total} gap(s) in ${devices.length} device(s) between ${formatLocalTime(from, tz)} and ${formatLocalTime(to, tz)}`,
    );
    if (flag(args, 'fill'))
      ctx.out(
        total ? `queued ${queued} backfill window(s) for them; follow with: expeed-sync status` : 'nothing to fill',
      );
    return 0;
  },
};
