import { setFlagsFromString } from 'node:v8';
import { ConfigError } from '../base/config.js';
import { UsageError } from './args.js';
import type { Command } from './command.js';
import { createContext, type CommandContext } from './context.js';

type Loader = () => Promise<Command>;

/** The command table; modules load only when their command runs. */
const COMMANDS: Record<string, Loader> = {
  run: async () => (await import('./commands/run.js')).command,
  backfill: async () => (await import('./commands/backfill.js')).command,
  devices: async () => (await import('./commands/devices.js')).command,
  token: async () => (await import('./commands/token.js')).command,
  gaps: async () => (await import('./commands/gaps.js')).command,
  set: async () => (await import('./commands/set.js')).command,
  'dead-letters': async () => (await import('./commands/dead-letters.js')).command,
  rollup: async () => (await import('./commands/rollup.js')).command,
  verify: async () => (await import('./commands/verify.js')).command,
  status: async () => (await import('./commands/status.js')).command,
  simulate: async () => (await import('./commands/simulate.js')).command,
  check: async () => (await import('./commands/check.js')).command,
};

async function help(): Promise<string> {
  const lines = ['usage: expeed-sync <command> [options]', '', 'commands:'];
  for (const [name, load] of Object.entries(COMMANDS)) {
    try {
      const c = await load();
      lines.push(`  ${c.usage.padEnd(72)} ${c.summary}`);
    } catch {
      lines.push(`  ${name}`);
    }
  }
  lines.push('', 'configuration is read from the environment; see README.md');
  return lines.join('\n');
}

/**
 * The process's memory policy (EXPEED_HEAP_GROWTH_PERCENT): V8 lets the heap grow only this far
 * past what the last full GC kept, instead of its default factor that lets a process whose live
 * heap is 30 MB grow to ~200 MB. Set at run time, before the service allocates; 0 keeps V8's default.
 */
function applyHeapGrowth(percent: number): void {
  if (percent > 0) setFlagsFromString(`--heap-growing-percent=${percent}`);
}

/** Entry point of the `expeed-sync` command: exits non-zero with a one-line reason on failure. */
export async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${await help()}\n`);
    process.exitCode = name ? 0 : 2;
    return;
  }
  const load = COMMANDS[name];
  if (!load) {
    process.stderr.write(`expeed-sync: unknown command "${name}" (see expeed-sync --help)\n`);
    process.exitCode = 2;
    return;
  }
  const command = await load();
  if (rest.includes('--help')) {
    process.stdout.write(`usage: expeed-sync ${command.usage}\n  ${command.summary}\n`);
    return;
  }
  let ctx: CommandContext | undefined;
  try {
    ctx = createContext();
    applyHeapGrowth(ctx.config.heapGrowthPercent);
    const { log, config } = ctx;
    if (!command.standalone) {
      await ctx.connect(
        command.waitsForRedis
          ? (err, attempt) =>
              log.warn(
                { attempt, waitMs: config.redisConnectTimeoutMs },
                `${err.message}; still waiting (attempt ${attempt})`,
              )
          : undefined,
      );
    }
    process.exitCode = await command.run(rest, ctx);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    const reason = ctx ? ctx.scrubber.scrub(message) : message;
    const prefix = err instanceof ConfigError ? 'configuration error: ' : err instanceof UsageError ? 'usage: ' : '';
    process.stderr.write(`expeed-sync ${name}: ${prefix}${reason.split('\n')[0]}\n`);
    process.exitCode = err instanceof UsageError ? 2 : 1;
  } finally {
    await ctx?.close().catch(() => undefined);
  }
  // After a failure everything we opened is closed, but a library may still hold a timer: BullMQ's
  // stalled-job check, when a worker is closed right after it started, sleeps its 30 s out first.
  // A supervisor must see the exit now, not then.
  if (process.exitCode) process.exit();
}
