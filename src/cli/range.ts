import { UsageError } from './args.js';
import { parseInstant } from './instant.js';

/**
 * The `--from` / `--to` range of a command (`backfill`, `gaps`, `rollup`, `verify`), bounded
 * before any work starts: `--to` never lies past the newest instant the command can act on (now,
 * or the newest settled hour for rollups; the command says so when it caps), and the range is
 * refused when it would make more work units (windows, days, hours) than `RangeLimit` allows.
 */
export interface CommandRange {
  /** epoch ms; undefined when `--from` was not given and the command has no default for it */
  from: number | undefined;
  /** epoch ms, exclusive, at most `latest` */
  to: number;
  /** one line to show the operator when `--to` was capped */
  capped?: string;
}

export interface RangeRules {
  timezone: string;
  /** the newest end the command can act on (default: now) */
  latest?: number;
  /** how `latest` is called in the capping line (default "now") */
  latestName?: string;
  /** the end when no `--to` is given (default: `latest`) */
  defaultTo?: number;
  /** the start when no `--from` is given, from the end; without it `from` stays undefined */
  defaultFrom?: (to: number) => number;
}

/**
 * Reads `--from` and `--to` (ISO 8601; without a zone, platform-local time), caps `--to` at
 * `latest` and checks that `from` is before `to` when both are known.
 */
export function readRange(fromArg: string | undefined, toArg: string | undefined, rules: RangeRules): CommandRange {
  const latest = rules.latest ?? Date.now();
  let to = rules.defaultTo ?? latest;
  let capped: string | undefined;
  if (toArg !== undefined) {
    to = parseInstant(toArg, rules.timezone, '--to');
    if (to > latest) {
      capped = `--to ${toArg} is later than ${rules.latestName ?? 'now'}: capped at ${new Date(latest).toISOString()}`;
      to = latest;
    }
  } else if (to > latest) {
    to = latest;
  }
  const from = fromArg !== undefined ? parseInstant(fromArg, rules.timezone, '--from') : rules.defaultFrom?.(to);
  if (from !== undefined && from >= to)
    throw new UsageError(
      `--from (${new Date(from).toISOString()}) must be before --to (${new Date(to).toISOString()})`,
    );
  return { from, to, ...(capped ? { capped } : {}) };
}

/** How much work one command may queue; a range past either bound is refused before any work starts. */
export interface RangeLimit {
  /** length of one unit of work, ms (a backfill window, a scanned day, a rolled-up hour) */
  unitMs: number;
  /** what one unit is called in the refusal ("window", "hour") */
  unit: string;
  /** at most this many units for one device */
  perDevice: number;
  /** at most this many units over all devices of the command */
  total: number;
}

/** About ten years of one-day backfill windows for one device, a million over a fleet. */
export const BACKFILL_LIMIT = { unit: 'backfill window', perDevice: 3_660, total: 1_000_000 } as const;
/** One gap scan reads a bucket count per cadence interval: a year per device, at most. */
export const GAPS_LIMIT = {
  unitMs: 86_400_000,
  unit: 'day',
  perDevice: 366,
  total: 366_000,
} as const satisfies RangeLimit;
/** About ten years of hours for one device, two million dirty hours over all devices. */
export const ROLLUP_LIMIT = {
  unitMs: 3_600_000,
  unit: 'hour',
  perDevice: 87_840,
  total: 2_000_000,
} as const satisfies RangeLimit;
/** `verify` re-reads every hour it compares from the platform: a year of hours per device, two million over all devices. */
export const VERIFY_LIMIT = {
  unitMs: 3_600_000,
  unit: 'hour',
  perDevice: 8_784,
  total: 2_000_000,
} as const satisfies RangeLimit;

export interface RangeSpan {
  deviceId: string;
  from: number;
  to: number;
}

/** Units of work in [from, to): the grid cells it touches, partial ones counted. */
export function unitsIn(from: number, to: number, unitMs: number): number {
  if (!(to > from)) return 0;
  return Math.floor((to - 1) / unitMs) - Math.floor(from / unitMs) + 1;
}

/**
 * Throws a UsageError naming the device, the range and the bound when the spans would make more
 * units of work than `limit` allows; returns the total units otherwise.
 */
export function checkRangeSize(spans: Iterable<RangeSpan>, limit: RangeLimit): number {
  let total = 0;
  let devices = 0;
  for (const s of spans) {
    const n = unitsIn(s.from, s.to, limit.unitMs);
    if (n > limit.perDevice) {
      throw new UsageError(
        `range too large: device ${s.deviceId} from ${new Date(s.from).toISOString()} to ${new Date(s.to).toISOString()} is ${n.toLocaleString('en-US')} ${limit.unit}s, ` +
          `more than the ${limit.perDevice.toLocaleString('en-US')} one command takes per device; nothing was queued (give a later --from, or split the range)`,
      );
    }
    total += n;
    devices++;
  }
  if (total > limit.total) {
    throw new UsageError(
      `range too large: ${total.toLocaleString('en-US')} ${limit.unit}s over ${devices} device(s), more than the ${limit.total.toLocaleString('en-US')} one command takes; ` +
        'nothing was queued (give fewer devices or a shorter range)',
    );
  }
  return total;
}
