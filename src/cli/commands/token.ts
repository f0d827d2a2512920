/**
 * `expeed-sync token`: today's token calls against the daily budget, the operator reserve, when
 * the count resets and when the cached token expires. Never the token itself. Reading this spends
 * no token call.
 */
import { flag, parseArgs, UsageError } from '../args.js';
import type { Command } from '../command.js';
import { cooldownCause } from '../token-cooldown.js';
import { tokenBudgetFromConfig } from '../../platform/token/budget-config.js';
import type { TokenUsage } from '../../platform/token/usage.js';
import { formatLocalTime } from '../../platform/time-format.js';
import { Queue } from 'bullmq';
import { bullConnection, type RedisConnection } from '../../base/redis.js';
import { QUEUE, type BackfillJob } from '../../base/jobs.js';
import { CooldownWaits } from '../../pull/cooldown-waits.js';

const USAGE = 'token [--json] [--clear-cooldown]';

export const command: Command = {
  usage: USAGE,
  summary: "today's token calls against the daily budget, and when the cached token expires (never the token)",
  async run(argv, ctx) {
    const args = parseArgs(argv, { flags: ['json', 'clear-cooldown'] });
    if (args.positionals.length) throw new UsageError(`token takes no arguments (got "${args.positionals[0]}")`);
    const budget = tokenBudgetFromConfig(ctx.config, ctx.redis(), { scrubber: ctx.scrubber });
    ctx.onClose(() => budget.close());
    if (flag(args, 'clear-cooldown')) {
      const cleared = await budget.clearCooldown();
      ctx.out(
        cleared ? 'token cool-down lifted: the next platform call may fetch a token' : 'there was no token cool-down',
      );
      const started = await releaseWaits(ctx.redis(), ctx.config.prefix);
      if (started) ctx.out(`${started} backfill job(s) that waited for the cool-down start now`);
    }
    const usage = await budget.usage();
    if (flag(args, 'json')) {
      ctx.out(JSON.stringify({ ...usage, timezone: ctx.config.timezone }, null, 2));
      return 0;
    }
    for (const line of describeUsage(usage, ctx.config.timezone, Date.now())) ctx.out(line);
    return 0;
  },
};

/** Starts the backfill jobs delayed for the cool-down that was just lifted; how many. */
async function releaseWaits(redis: RedisConnection, prefix: string): Promise<number> {
  const waits = new CooldownWaits(redis, prefix);
  if ((await waits.waiting()).jobs === 0) return 0;
  const queue = new Queue<BackfillJob>(QUEUE.backfill, { connection: bullConnection(redis), prefix });
  try {
    return await waits.release(queue);
  } finally {
    await queue.close();
  }
}

/** The human-readable report, one `label  value` line each. */
export function describeUsage(u: TokenUsage, timezone: string, now: number): string[] {
  const scheduledLimit = u.limit - u.reserve;
  const left = Math.max(0, u.limit - u.calls);
  const lines: Array<[string, string]> = [
    ['platform day', `${u.day} (${timezone})`],
    [
      'token calls',
      `${u.calls} of ${u.limit} today, ${left} left` +
        (u.reserve > 0
          ? `; scheduled work stops at ${scheduledLimit}, the last ${u.reserve} are kept for commands run by hand`
          : ''),
    ],
    ['resets at', `${formatLocalTime(u.resetsAt, timezone)} (${inTime(u.resetsAt - now)})`],
  ];
  if (u.tokenExpiresAt === undefined) {
    lines.push(['access token', 'none cached (the next platform call fetches one)']);
  } else if (u.tokenExpiresAt <= now) {
    lines.push([
      'access token',
      `expired at ${formatLocalTime(u.tokenExpiresAt, timezone)} (the next platform call fetches one)`,
    ]);
  } else {
    lines.push([
      'access token',
      `cached, expires ${formatLocalTime(u.tokenExpiresAt, timezone)} (${inTime(u.tokenExpiresAt - now)})`,
    ]);
  }
  if (u.refreshing) lines.push(['refresh', 'a process is fetching a new token right now']);
  if (u.calls >= u.limit) lines.push(['state', 'budget spent: no token can be fetched until the reset']);
  else if (u.calls >= scheduledLimit)
    lines.push(['state', 'scheduled work is stopped; only commands run by hand may fetch a token']);
  if (u.cooldownUntil !== undefined) {
    lines.push([
      'cool-down',
      `token calls paused until ${formatLocalTime(u.cooldownUntil, timezone)} (${inTime(u.cooldownUntil - now)}), ${cooldownCause(u)}: ${u.cooldownReason ?? ''}`,
    ]);
  }
  return lines.map(([label, value]) => `${label.padEnd(13)} ${value}`);
}

function inTime(ms: number): string {
  if (ms <= 0) return 'now';
  const minutes = Math.ceil(ms / 60_000);
  const h = Math.floor(minutes / 60);
  const m = minutes % 60;
  return `in ${h > 0 ? `${h}h ` : ''}${m}m`;
}
