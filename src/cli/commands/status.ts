import { gatherRecheck, renderRecheck } from '../../status/recheck.js';
import { flag, one, parseArgs, UsageError } from '../args.js';
import { describeBudget } from '../../dead-letters/budget-report.js';
import type { Command } from '../command.js';
import {
  DEFAULT_STALE_AFTER_MS,
  DEVICE_STATES,
  gatherStatus,
  type DeviceStatusRow,
  type StatusReport,
} from '../../status/report.js';
import { cronIntervalMs } from '../../pull/status-slot.js';
import { formatLocalTime } from '../../platform/time-format.js';
import { QUEUE } from '../../base/jobs.js';
import { table } from '../table.js';
import { problemGroups } from '../../status/problem-groups.js';
import { cooldownCause } from '../token-cooldown.js';
import { describePersistence, readPersistence } from '../../ops/redis-persistence.js';
import { PlatformProfileStore, type PlatformProfile } from '../../platform/platform-profile.js';

function ago(at: number | undefined, now: number): string {
  if (at === undefined) return '-';
  const s = Math.max(0, Math.round((now - at) / 1000));
  if (s < 120) return `${s}s ago`;
  if (s < 7200) return `${Math.round(s / 60)}m ago`;
  if (s < 172_800) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86_400)}d ago`;
}

/**
 * The one line of a credentials refusal: when the platform refused them and how many jobs wait for
 * the cool-down (they keep their devices' state: nothing about the devices is known).
 */
export function credentialsLine(
  r: Pick<StatusReport, 'token' | 'cooldownWaits'>,
  t: (ms: number | undefined) => string,
): string | undefined {
  const k = r.token;
  if (k?.cooldownKind !== 'credentials' || k.cooldownUntil === undefined) return undefined;
  const jobs = r.cooldownWaits?.jobs ?? 0;
  return `platform refused the credentials at ${t(k.cooldownSince)}; ${jobs} ${jobs === 1 ? 'job waits' : 'jobs wait'} for the cool-down until ${t(k.cooldownUntil)}`;
}

/** The devices whose rollup keeps failing, the first ROLLUP_FAILURES_SHOWN (most failures first). */
export function rollupFailureLines(
  r: Pick<StatusReport, 'rollupFailures'>,
  t: (ms: number | undefined) => string,
  scrub: (s: string) => string,
): string[] {
  const failing = r.rollupFailures ?? [];
  if (failing.length === 0) return [];
  const out = [
    `  FAILING (${failing.length} device${failing.length === 1 ? '' : 's'}; tried again after a backoff, 1 min doubling to 1 h):`,
  ];
  for (const f of failing.slice(0, ROLLUP_FAILURES_SHOWN)) {
    out.push(
      `    ${f.deviceId}: ${f.count} failure${f.count === 1 ? '' : 's'} since ${t(f.firstAt)}, ${f.hours} hour(s) from ${t(f.firstHour)}, next try ${t(f.nextAt)}: ${scrub(f.reason)}`,
    );
  }
  if (failing.length > ROLLUP_FAILURES_SHOWN)
    out.push(`    and ${failing.length - ROLLUP_FAILURES_SHOWN} more (status --json lists them)`);
  return out;
}

const ROLLUP_FAILURES_SHOWN = 10;

export interface StatusView {
  /** every device, not only those with problems */
  all?: boolean;
  /** this device only */
  device?: string;
}

/** The one line of what the walks learned about the platform's history pages. */
export function describePlatform(p: PlatformProfile | undefined, when: string): string {
  if (p === undefined) return 'platform: nothing learned yet (no history walk has ended)';
  const order =
    p.order === 'newest-first'
      ? 'pages newest first'
      : p.order === 'asked'
        ? 'pages oldest first, as asked'
        : 'page order not seen yet';
  const size =
    p.pageCap !== undefined
      ? `at most ${p.pageCap} rows per page`
      : `no page cap seen${p.largestPage ? ` (largest page ${p.largestPage} rows)` : ''}`;
  return `platform: ${order}, ${size} (learned ${when})`;
}

function days(ms: number): string {
  return ms % 86_400_000 === 0 ? `${ms / 86_400_000}d` : `${Math.round(ms / 3_600_000)}h`;
}

/** Formats a time of the report in its timezone; `-` for none. */
type TimeFormat = (ms: number | undefined) => string;

/**
 * The one screen an operator reads at a glance: a summary of devices by state, then the devices
 * with problems grouped by state, the first few of each (thousands of healthy or never-synced
 * devices would bury the rest), queues, token budget. `--all` and `--device` list without caps.
 */
export function renderStatus(
  r: StatusReport,
  timezone: string,
  scrub: (s: string) => string,
  view: StatusView = {},
): string {
  const out: string[] = [];
  const t: TimeFormat = (ms) => (ms === undefined ? '-' : formatLocalTime(ms, timezone));
  out.push(`expeed-sync status at ${t(r.at)} (${timezone})`, '');
  const refused = credentialsLine(r, t);
  if (refused) out.push(refused, '');
  out.push(...deviceLines(r, t, scrub, view));
  out.push(
    '',
    describePlatform(r.platform, r.platform ? `${t(r.platform.learnedAt)}, ${ago(r.platform.learnedAt, r.at)}` : ''),
  );
  out.push('', 'QUEUES');
  for (const [name, c] of Object.entries(r.queues)) {
    out.push(
      `  ${name.padEnd(9)} waiting ${c.waiting ?? 0}  active ${c.active ?? 0}  delayed ${c.delayed ?? 0}  failed ${c.failed ?? 0}  completed ${c.completed ?? 0}`,
    );
  }
  out.push('', 'TOKEN BUDGET', ...tokenLines(r, t, scrub));
  out.push(...rollupLines(r, t));
  out.push(...rollupFailureLines(r, t, scrub));
  out.push('', `DEAD LETTERS  ${r.deadLetters ?? '?'}${r.deadLetters ? '  (expeed-sync dead-letters list)' : ''}`);
  if (r.deadLetterBudget) out.push(`  budget: ${describeBudget(r.deadLetterBudget)}`);
  if (r.redisPersistence) out.push('', `REDIS PERSISTENCE  ${describePersistence(r.redisPersistence)}`);
  for (const [section, why] of Object.entries(r.errors)) out.push(`! ${section} could not be read: ${scrub(why)}`);
  return out.join('\n');
}

/** The DEVICES section: the summary by state, then the devices the view lists (or those with problems, by state). */
function deviceLines(r: StatusReport, t: TimeFormat, scrub: (s: string) => string, view: StatusView): string[] {
  const out = [`DEVICES (${r.devices.length})`];
  const problems = r.devices.length - r.summary.ok;
  const list = view.device !== undefined || view.all;
  if (r.devices.length === 0) out.push('  none registered: expeed-sync devices add ID --key KEY');
  else {
    out.push(
      `  ${DEVICE_STATES.map((st) => `${st} ${r.summary[st]}`).join('  ')}  (stale: synced more than ${days(r.staleAfterMs)} ago)`,
    );
    if (!list && problems === 0) out.push('  no device has a problem (--all lists every device)');
    else if (!list) out.push(`  with problems (${problems}; --all lists every device):`);
  }
  if (list) {
    const shown = view.device !== undefined ? r.devices.filter((d) => d.id === view.device) : r.devices;
    if (shown.length) out.push(...deviceRows(shown, r.at, t, scrub));
  } else {
    // by state, the first few of each: thousands of never-synced devices stay one screen
    for (const g of problemGroups(r.devices)) {
      out.push(`  ${g.state} (${g.total}):`, ...deviceRows(g.shown, r.at, t, scrub));
      if (g.more) out.push(`  and ${g.more} more — \`--all\``);
    }
  }
  return out;
}

/** The table of `shown` devices, indented. */
function deviceRows(shown: DeviceStatusRow[], at: number, t: TimeFormat, scrub: (s: string) => string): string[] {
  return table(
    ['ID', 'STATE', 'ONLINE', 'LAST DATA', 'PLATFORM NEWEST', 'SYNCED UP TO', 'PROBLEMS'],
    shown.map((d) => [
      d.name ? `${d.id} (${d.name})` : d.id,
      d.state,
      d.online === undefined ? '?' : d.online ? 'online' : 'OFFLINE',
      d.lastDataAt === undefined ? 'none' : `${t(d.lastDataAt)} (${ago(d.lastDataAt, at)})`,
      // '-': not asked yet (asked before nightly and catch-up walks); 'none': asked, never reported
      d.platformAskedAt === undefined
        ? '-'
        : d.platformNewestAt === undefined
          ? 'none'
          : `${t(d.platformNewestAt)} (asked ${ago(d.platformAskedAt, at)})`,
      t(d.checkpoint),
      [
        d.failure ? `code ${d.failure.code}: ${scrub(d.failure.message)}` : '',
        d.failedJobs ? `${d.failedJobs} failed job(s)` : '',
      ]
        .filter(Boolean)
        .join('; ') || 'ok',
    ]),
  )
    .split('\n')
    .map((l) => `  ${l}`);
}

/** The token budget's lines: calls today, the cached token, a cool-down. */
function tokenLines(r: StatusReport, t: TimeFormat, scrub: (s: string) => string): string[] {
  const k = r.token;
  if (!k) return [];
  const out = [
    `  ${k.calls}/${k.limit} calls on platform day ${k.day} (reserve ${k.reserve} for manual commands); resets ${t(k.resetsAt)}`,
    `  cached token: ${k.tokenExpiresAt ? `expires ${t(k.tokenExpiresAt)}` : 'none'}`,
  ];
  if (k.cooldownUntil)
    out.push(
      `  COOL-DOWN: no token calls until ${t(k.cooldownUntil)} — ${cooldownCause(k)}: ${scrub(k.cooldownReason ?? '')}`,
    );
  return out;
}

/** The ROLLUPS section: the hours and days waiting, and how long raw rows and rollups are kept. */
function rollupLines(r: StatusReport, t: TimeFormat): string[] {
  if (!r.rollupBacklog) return [];
  const due = (b: { oldestDue?: number }) =>
    b.oldestDue === undefined
      ? ''
      : `, the oldest due ${b.oldestDue <= r.at ? ago(b.oldestDue, r.at) : `at ${t(b.oldestDue)}`}`;
  const d = r.rollupDayBacklog;
  const kept = (ms: number) => (ms % 86_400_000 ? `${ms / 3_600_000}h` : `${ms / 86_400_000}d`);
  const hourly =
    r.hourlyRetentionMs === undefined
      ? 'rollups forever'
      : `hourly rollups ${kept(r.hourlyRetentionMs)} (EXPEED_HOURLY_RETENTION), daily rollups forever`;
  return [
    '',
    `ROLLUPS  ${r.rollupBacklog.hours} hour(s) waiting${due(r.rollupBacklog)}${d ? `; ${d.hours} day(s) waiting${due(d)}` : ''}`,
    `  raw rows kept ${r.rawRetentionMs === undefined ? 'forever' : kept(r.rawRetentionMs)} (EXPEED_RAW_RETENTION), ${hourly}`,
  ];
}

export const command: Command = {
  usage: 'status [--all] [--device ID] [--json]',
  summary:
    'one screen: devices by state (ok, failing, stale, never synced), the devices with problems by state, the first 10 of each (--all: every device), queues, token budget, dead letters, Redis persistence',
  async run(argv, ctx) {
    const args = parseArgs(argv, { flags: ['json', 'all'], values: ['device'] });
    if (args.positionals.length) throw new UsageError(`status takes no arguments (got "${args.positionals[0]}")`);
    const device = one(args, 'device');
    const { config } = ctx;
    const stack = await ctx.app();
    // the same registry the service and the other commands see, even if none of them ran yet
    if (config.devicesFile) await stack.registry.mergeFile(config.devicesFile);
    if (device !== undefined && !(await stack.registry.get(device)))
      throw new UsageError(`--device: device "${device}" is not registered`);
    const ingest = await stack.ingestQueue();
    const report = await gatherStatus({
      registry: stack.registry,
      checkpoints: stack.checkpoints,
      influx: stack.influx,
      queues: [stack.backfillQueue, stack.statusQueue, ingest.queue, stack.rollup.queue],
      backfillQueueName: QUEUE.backfill,
      tokens: stack.tokens,
      cooldownWaits: stack.cooldownWaits,
      deadLetters: stack.deadLetters,
      platformNewest: stack.platformNewest,
      rollups: stack.rollup.dirty,
      rollupDays: stack.rollup.days,
      rollupFailures: stack.rollup.failures,
      rawRetentionMs: config.influx.rawRetentionMs,
      hourlyRetentionMs: config.influx.hourlyRetentionMs,
      persistence: () => readPersistence(stack.redis),
      platformProfile: new PlatformProfileStore({ redis: stack.redis, prefix: config.prefix }),
      staleAfterMs: config.schedules.nightly
        ? 2 * cronIntervalMs(config.schedules.nightly, config.timezone)
        : DEFAULT_STALE_AFTER_MS,
    });
    const recheck = await gatherRecheck(stack.redis, config.prefix);
    // JSON keeps every device (scripts rely on it) unless one was asked for
    if (flag(args, 'json'))
      ctx.out(
        JSON.stringify(
          ctx.scrubber.scrubValue(
            device === undefined
              ? { ...report, ...recheck }
              : { ...report, ...recheck, devices: report.devices.filter((d) => d.id === device) },
          ),
          null,
          2,
        ),
      );
    else
      ctx.out(
        `${renderStatus(report, config.timezone, (s) => ctx.scrubber.scrub(s), { all: flag(args, 'all'), device })}\n${ctx.scrubber.scrub(renderRecheck(recheck, config.timezone, device))}`,
      );
    // a section that could not be read is a failure for scripts
    return Object.keys(report.errors).length ? 1 : 0;
  },
};
