import { all, one, parseArgs, UsageError } from '../args.js';
import type { Command } from '../command.js';
import { UnrecoverableError } from 'bullmq';
import { checkRangeSize, readRange, ROLLUP_LIMIT, type RangeSpan } from '../range.js';
import { formatLocalTime } from '../../platform/time-format.js';
import { MEASUREMENT } from '../../influx/api.js';
import { influxIdent, influxString } from '../../influx/query.js';
import { HOUR_MS, hourOf } from '../../rollup/dirty-hours.js';
import type { App } from '../../app/app.js';

const USAGE = 'rollup [--device ID]... [--from T] [--to T]';

/**
 * Marks the range's hours dirty (as due at once) and runs a rollup worker and dispatcher here
 * until none of them is dirty, and then none of their days: the same path as the service's, so a
 * rollup requested by hand never races one the service runs for the same device.
 */
export const command: Command = {
  usage: USAGE,
  summary:
    'recompute the hourly rollups (device_data_1h) of a range from the raw rows, then the daily ones (device_data_1d) of their days, and wait until done (default: every device in InfluxDB, from its first row to the last hour that has ended; due at once, without waiting for EXPEED_ROLLUP_SETTLE)',
  async run(argv, ctx) {
    const args = parseArgs(argv, { values: ['device', 'from', 'to'] });
    if (args.positionals.length) throw new UsageError(`unexpected argument "${args.positionals[0]}" (${USAGE})`);
    const { config } = ctx;
    const tz = config.timezone;
    // a request by hand is due at once (EXPEED_ROLLUP_SETTLE does not apply); the open hour is
    // rolled up by the service once it has ended
    const newest = hourOf(Date.now());
    const range = readRange(one(args, 'from'), one(args, 'to'), {
      timezone: tz,
      latest: newest,
      latestName: 'the newest ended hour',
    });
    const to = range.to;
    if (range.capped) ctx.out(range.capped);
    const stack = await ctx.app();
    const spans = await spansOf(stack, all(args, 'device'), range.from, to, ctx.out);
    // every device's range is checked before the first hour is marked
    checkRangeSize(spans, ROLLUP_LIMIT);
    const ranges = await markHours(stack, spans, to, newest, tz, ctx.out);
    if (ranges.size === 0) return 0;
    await rollUp(stack, ranges, ctx.out);
    return 0;
  },
};

type Out = (line: string) => void;

/** Each device's span: from the range's start, or from its first row (devices without rows are skipped); the devices named, or every one in InfluxDB. */
async function spansOf(
  stack: Pick<App, 'influx'>,
  named: string[],
  rangeFrom: number | undefined,
  to: number,
  out: Out,
): Promise<RangeSpan[]> {
  let devices = named;
  if (devices.length === 0) {
    const tags = await stack.influx.rows(
      `SHOW TAG VALUES FROM ${influxIdent(MEASUREMENT.data)} WITH KEY = ${influxIdent('device_id')}`,
    );
    devices = tags.map((r) => String(r.value));
    if (devices.length === 0) throw new Error(`no device has rows in ${MEASUREMENT.data} yet: nothing to roll up`);
  }
  const spans: RangeSpan[] = [];
  for (const id of devices) {
    let from = rangeFrom;
    if (from === undefined) {
      const first = await stack.influx.rows(
        `SELECT * FROM ${influxIdent(MEASUREMENT.data)} WHERE ${influxIdent('device_id')} = ${influxString(id)} ORDER BY time ASC LIMIT 1`,
      );
      if (first.length === 0) {
        out(`${id}: no rows in ${MEASUREMENT.data}, skipped`);
        continue;
      }
      from = first[0].time as number;
    }
    spans.push({ deviceId: id, from: hourOf(from), to });
  }
  return spans;
}

/** Marks each span's ended hours dirty (due at once); returns the hours per device that has any. */
async function markHours(
  stack: Pick<App, 'rollup'>,
  spans: RangeSpan[],
  to: number,
  newest: number,
  tz: string,
  out: Out,
): Promise<Map<string, number[]>> {
  const ranges = new Map<string, number[]>();
  for (const { deviceId: id, from } of spans) {
    const hours: number[] = [];
    for (let h = from; h < to; h += HOUR_MS) hours.push(h);
    if (hours.length === 0) {
      out(`${id}: no ended hour in the range (the newest is ${formatLocalTime(newest - HOUR_MS, tz)})`);
      continue;
    }
    ranges.set(id, hours);
    await stack.rollup.dirty.mark(new Map([[id, hours]]), { manual: true });
    out(
      `${id}: ${hours.length} hour(s) from ${formatLocalTime(hours[0], tz)} to ${formatLocalTime(hours.at(-1)! + HOUR_MS, tz)}`,
    );
  }
  return ranges;
}

/** Runs a rollup worker and dispatcher here until none of the hours is dirty, then none of their days; a final failure ends it. */
async function rollUp(
  stack: Pick<App, 'startRollupWorker' | 'rollup'>,
  ranges: Map<string, number[]>,
  out: Out,
): Promise<void> {
  const worker = stack.startRollupWorker();
  let failure: string | undefined;
  worker.on('failed', (job, err) => {
    // a failed computation is final at once (UnrecoverableError: the service's dispatcher backs it off)
    if (job && (err instanceof UnrecoverableError || job.attemptsMade >= (job.opts.attempts ?? 1)))
      failure = `device ${job.data.deviceId}: ${err.message}`;
  });
  // asked for by hand: due at once, even for a device whose failing rollup backs off; one that
  // fails here is not dispatched again by this command (it ends, naming the failure)
  const startedAt = Date.now();
  const failedHere = async () =>
    new Set((await stack.rollup.failures.list()).filter((f) => f.lastAt >= startedAt).map((f) => f.deviceId));
  stack.rollup.startDispatcher({ everyMs: 500, failures: { backingOff: failedHere } });
  const total = [...ranges.values()].reduce((n, h) => n + h.length, 0);
  // a day is touched when one of its hours is rolled up: wait for the hours, then for their days
  const days = new Map([...ranges].map(([id, hours]) => [id, stack.rollup.days.daysOf(hours)]));
  const totalDays = [...days.values()].reduce((n, d) => n + d.length, 0);
  let lastShown = 0;
  for (const tier of ['hour', 'day'] as const) {
    const [buckets, all, count] =
      tier === 'hour' ? [ranges, total, stack.rollup.dirty] : [days, totalDays, stack.rollup.days];
    for (;;) {
      let left = 0;
      for (const [id, b] of buckets) left += await count.count(id, b);
      if (left === 0) break;
      if (failure)
        throw new Error(`rollup failed (its ${tier}s stay dirty and are retried by the service): ${failure}`);
      if (Date.now() - lastShown >= 5000) {
        out(`${all - left}/${all} ${tier}(s) rolled up`);
        lastShown = Date.now();
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  out(
    `${total}/${total} hour(s) rolled up into ${MEASUREMENT.rollup}, ${totalDays}/${totalDays} day(s) into ${MEASUREMENT.rollupDay}`,
  );
}
