import { all, flag, one, parseArgs, UsageError } from '../args.js';
import type { Command } from '../command.js';
import type { App } from '../../app/app.js';
import type { CommandContext } from '../context.js';
import { BACKFILL_LIMIT, checkRangeSize, readRange } from '../range.js';
import { BackfillTracker, type ProgressSnapshot } from '../progress.js';
import { plainLine, terminalLines } from '../progress-view.js';
import type { QueuedWindow } from '../../pull/backfill-queue.js';
import type { BackfillJob } from '../../base/jobs.js';
import { describeSetAside } from '../../pull/backfill-runner.js';

/** `backfill --wait` exit code when every job ended but rows were set aside as dead letters */
export const EXIT_SET_ASIDE = 3;

const USAGE = 'backfill (--all | --device ID...) [--from T] [--to T] [--wait]';

export const command: Command = {
  usage: USAGE,
  summary:
    'queue history backfills (T: ISO 8601; without a zone it is platform-local time); --wait runs them here and shows progress, and exits 3 when rows were set aside as dead letters',
  async run(argv, ctx) {
    const args = parseArgs(argv, { values: ['device', 'from', 'to'], flags: ['all', 'wait'] });
    if (args.positionals.length) throw new UsageError(`unexpected argument "${args.positionals[0]}" (${USAGE})`);
    const ids = all(args, 'device');
    if (flag(args, 'all') === ids.length > 0) throw new UsageError(`give either --all or --device ID (${USAGE})`);
    const { config } = ctx;
    const { from, to, capped } = readRange(one(args, 'from'), one(args, 'to'), { timezone: config.timezone });
    if (capped) ctx.out(capped);

    const registry = ctx.registry();
    if (config.devicesFile) await registry.mergeFile(config.devicesFile);
    const devices = ids.length ? ids : (await registry.list()).map((d) => d.id);
    for (const id of ids)
      if (!(await registry.get(id)))
        throw new Error(`device "${id}" is not registered (add it with: expeed-sync devices add ${id} --key KEY)`);
    if (devices.length === 0)
      throw new Error('no devices registered (add one with: expeed-sync devices add ID --key KEY)');

    const stack = await ctx.app();
    // checkpoints read and windows queued in bulk (pipelines, addBulk): `--all` over a large fleet
    const checkpoints =
      from === undefined ? await stack.checkpoints.getMany(devices) : new Map<string, { upTo: number }>();
    const requests: BackfillJob[] = [];
    for (const id of devices) {
      const start = from ?? checkpoints.get(id)?.upTo ?? config.backfillStart;
      if (start >= to) {
        ctx.out(`${id}: already synced up to ${new Date(start).toISOString()}; nothing to queue`);
        continue;
      }
      // an operator's command may spend the token reserve that scheduled work leaves alone
      requests.push({ deviceId: id, from: start, to, reason: 'manual', useReserve: true });
    }
    checkRangeSize(
      requests.map((r) => ({ deviceId: r.deviceId, from: r.from, to: r.to })),
      { ...BACKFILL_LIMIT, unitMs: config.backfillWindowMs },
    );
    const queued: QueuedWindow[] = await stack.backfills.enqueueMany(requests);
    const dup = queued.filter((q) => q.deduplicated).length;
    ctx.out(
      `queued ${queued.length - dup} backfill window(s) for ${new Set(queued.map((q) => q.deviceId)).size} device(s)${dup ? ` (${dup} already queued or running: following those)` : ''}`,
    );
    if (!flag(args, 'wait') || queued.length === 0) return 0;
    return waitFor(ctx, stack, queued);
  },
};

async function waitFor(ctx: CommandContext, stack: App, queued: QueuedWindow[]): Promise<number> {
  // a worker here makes --wait work without a running service; other workers share the jobs
  stack.startBackfillWorker();
  const tracker = new BackfillTracker(stack.backfillQueue, queued);
  const tty = process.stdout.isTTY === true;
  const started = Date.now();
  let drawn = 0;
  let lastPlain = 0;
  let interrupted = false;
  const onSigint = () => (interrupted = true);
  process.once('SIGINT', onSigint);
  let snap: ProgressSnapshot;
  try {
    for (;;) {
      snap = await tracker.poll();
      const elapsed = Date.now() - started;
      if (tty) {
        const lines = terminalLines(snap, elapsed, { width: process.stdout.columns ?? 120, maxDevices: 12 });
        process.stdout.write(`${drawn ? `\x1b[${drawn}A` : ''}${lines.map((l) => `\x1b[2K${l}\n`).join('')}`);
        drawn = lines.length;
      } else if (snap.finished || Date.now() - lastPlain >= 5000) {
        ctx.out(plainLine(snap, elapsed));
        lastPlain = Date.now();
      }
      if (snap.finished || interrupted) break;
      await new Promise((r) => setTimeout(r, tty ? 250 : 1000));
    }
  } finally {
    process.off('SIGINT', onSigint);
  }
  if (interrupted) {
    ctx.out('stopped waiting; the jobs stay queued and resume from their checkpoints in any worker');
    return 130;
  }
  for (const f of snap.failures) {
    const where = `device ${f.deviceId} window ${new Date(f.from).toISOString()}..${new Date(f.to).toISOString()}`;
    const reason = ctx.scrubber.scrub(f.reason);
    process.stderr.write(`backfill failed: ${reason.startsWith(where) ? reason : `${where}: ${reason}`}\n`);
  }
  if (snap.failures.length) {
    const devices = [...new Set(snap.failures.map((f) => f.deviceId))];
    throw new Error(
      `${snap.failures.length} backfill job(s) failed, for device(s) ${devices.join(', ')}: ${snap.failures[0].reason}`,
    );
  }
  // exit 0 means every row the platform served is in InfluxDB: rows set aside are said, per device
  const setAside = snap.devices.filter((d) => d.unreadable > 0);
  for (const d of setAside)
    process.stderr.write(`backfill: device ${d.deviceId}: ${ctx.scrubber.scrub(describeSetAside(d))}\n`);
  if (setAside.length) {
    ctx.out(
      `done with rows set aside: ${snap.total.points} points written, ${snap.total.unreadable} row(s) of ${setAside.length} device(s) set aside as dead letters`,
    );
    return EXIT_SET_ASIDE;
  }
  ctx.out(
    `done: ${snap.total.points} points in ${snap.total.pages} pages, ${snap.total.windows} window(s), ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
  return 0;
}
