import { flag, parseArgs, UsageError } from '../args.js';
import type { Command } from '../main.js';
import { createPullStack } from '../../sync/pull-stack.js';
import { gatherStatus, type StatusReport } from '../../status/report.js';
import { formatLocalTime } from '../../platform/timestamp.js';
import { QUEUE } from '../../queues.js';
import { openIngestQueue } from '../../webhook/server.js';
import { table } from './devices.js';

function ago(at: number | undefined, now: number): string {
  if (at === undefined) return '-';
  const s = Math.max(0, Math.round((now - at) / 1000));
  if (s < 120) return `${s}s ago`;
  if (s < 7200) return `${Math.round(s / 60)}m ago`;
  if (s < 172_800) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86_400)}d ago`;
}

/** The one screen an operator reads at a glance. */
export function renderStatus(r: StatusReport, timezone: string, scrub: (s: string) => string): string {
  const out: string[] = [];
  const t = (ms: number | undefined) => (ms === undefined ? '-' : formatLocalTime(ms, timezone));
  out.push(`expeed-sync status at ${t(r.at)} (${timezone})`, '');
  out.push(`DEVICES (${r.devices.length})`);
  if (r.devices.length === 0) out.push('  none registered: expeed-sync devices add ID --key KEY');
  else
    out.push(
      table(
        ['ID', 'ONLINE', 'LAST DATA', 'SYNCED UP TO', 'PROBLEMS'],
        r.devices.map((d) => [
          d.name ? `${d.id} (${d.name})` : d.id,
          d.online === undefined ? '?' : d.online ? 'online' : 'OFFLINE',
          d.lastDataAt === undefined ? 'none' : `${t(d.lastDataAt)} (${ago(d.lastDataAt, r.at)})`,
          t(d.checkpoint),
          [d.failure ? `code ${d.failure.code}: ${scrub(d.failure.message)}` : '', d.failedJobs ? `${d.failedJobs} failed job(s)` : ''].filter(Boolean).join('; ') || 'ok',
        ]),
      )
        .split('\n')
        .map((l) => `  ${l}`)
        .join('\n'),
    );
  out.push('', 'QUEUES');
  for (const [name, c] of Object.entries(r.queues)) {
    out.push(`  ${name.padEnd(9)} waiting ${c.waiting ?? 0}  active ${c.active ?? 0}  delayed ${c.delayed ?? 0}  failed ${c.failed ?? 0}  completed ${c.completed ?? 0}`);
  }
  out.push('', 'TOKEN BUDGET');
  if (r.token) {
    const k = r.token;
    out.push(`  ${k.calls}/${k.limit} calls on platform day ${k.day} (reserve ${k.reserve} for manual commands); resets ${t(k.resetsAt)}`);
    out.push(`  cached token: ${k.tokenExpiresAt ? `expires ${t(k.tokenExpiresAt)}` : 'none'}${k.cooldownUntil ? `; credentials cool-down until ${t(k.cooldownUntil)}: ${scrub(k.cooldownReason ?? '')}` : ''}`);
  }
  out.push('', `DEAD LETTERS  ${r.deadLetters ?? '?'}${r.deadLetters ? '  (expeed-sync dead-letters list)' : ''}`);
  for (const [section, why] of Object.entries(r.errors)) out.push(`! ${section} could not be read: ${scrub(why)}`);
  return out.join('\n');
}

export const command: Command = {
  usage: 'status [--json]',
  summary: 'one screen: devices (online, last data, checkpoint, failures), queues, token budget, dead letters',
  async run(argv, ctx) {
    const args = parseArgs(argv, { flags: ['json'] });
    if (args.positionals.length) throw new UsageError(`status takes no arguments (got "${args.positionals[0]}")`);
    const { config } = ctx;
    const stack = createPullStack({ config, logger: ctx.log, scrubber: ctx.scrubber, redis: ctx.redis() });
    ctx.onClose(() => stack.close());
    const ingest = await openIngestQueue(config, config.prefix, ctx.log);
    ctx.onClose(() => ingest.close());
    const report = await gatherStatus({
      registry: stack.registry,
      checkpoints: stack.checkpoints,
      influx: stack.influx,
      queues: [stack.backfillQueue, stack.statusQueue, ingest.queue],
      backfillQueueName: QUEUE.backfill,
      tokens: stack.tokens,
      deadLetters: stack.deadLetters,
    });
    if (flag(args, 'json')) ctx.out(JSON.stringify(ctx.scrubber.scrubValue(report), null, 2));
    else ctx.out(renderStatus(report, config.timezone, (s) => ctx.scrubber.scrub(s)));
    // a section that could not be read is a failure for scripts
    return Object.keys(report.errors).length ? 1 : 0;
  },
};
