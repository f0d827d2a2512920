/**
 * `expeed-sync dead-letters list | retry [ID...] | drop ID...` — what could not be written, with
 * its reason and raw content, and the operator's two ways out: write it again, or let it go.
 *
 * Retrying takes the app's handler for each kind of letter (src/app/retry-handlers.ts): points and
 * rows are written again through the app's one write path, pushes go back on the `ingest` queue.
 */
import { flag, one, parseArgs, UsageError } from '../args.js';
import { retryHandlers } from '../../app/retry-handlers.js';
import type { Command } from '../command.js';
import { RedisDeadLetterStore, type RetryHandlers } from '../../dead-letters/store.js';

const USAGE = 'dead-letters list [--json] [--limit N] [--offset N] | retry [ID...] | drop ID...';

export interface DeadLettersDeps {
  store: Pick<RedisDeadLetterStore, 'list' | 'count' | 'retry' | 'drop'>;
  /** built only when `retry` runs (it may open an InfluxDB connection) */
  handlers(): Promise<RetryHandlers>;
  out(line: string): void;
  err(line: string): void;
  /** hides secrets (device keys in push bodies, tokens) from what is printed */
  scrubValue(value: unknown): unknown;
}

const RAW_WIDTH = 80;
const REASON_WIDTH = 100;

function truncate(text: string, width: number): string {
  const flat = text.replace(/\s+/g, ' ');
  return flat.length > width ? `${flat.slice(0, width - 1)}…` : flat;
}

/** JSON that shows NaN and ±Infinity as such (plain JSON would print them as null). */
export function showRaw(value: unknown): string {
  const text = JSON.stringify(value, (_k, v: unknown) => {
    if (typeof v === 'number' && !Number.isFinite(v)) return `\u0000${String(v)}\u0000`;
    if (typeof v === 'bigint') return `\u0000${v.toString()}\u0000`;
    return v;
  });
  return (text ?? 'undefined').replace(/"\\u0000(.*?)\\u0000"/g, '$1');
}

/** A copy that plain JSON can print faithfully: NaN, ±Infinity and bigint become strings, undefined null. */
export function jsonSafe(value: unknown): unknown {
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  if (typeof value === 'bigint') return value.toString();
  if (Array.isArray(value)) return value.map(jsonSafe);
  if (value !== null && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, v === undefined ? null : jsonSafe(v)]));
  return value;
}

function count(value: string | undefined, name: string, dflt: number): number {
  if (value === undefined) return dflt;
  if (!/^\d+$/.test(value)) throw new UsageError(`--${name} expects a whole number, got "${value}"`);
  return Number(value);
}

async function list(argv: string[], deps: DeadLettersDeps): Promise<number> {
  const args = parseArgs(argv, { flags: ['json'], values: ['limit', 'offset'] });
  if (args.positionals.length)
    throw new UsageError(`dead-letters list takes no arguments (got "${args.positionals[0]}")`);
  const limit = count(one(args, 'limit'), 'limit', 50);
  const offset = count(one(args, 'offset'), 'offset', 0);
  const [letters, total] = await Promise.all([deps.store.list({ limit, offset }), deps.store.count()]);
  const shown = letters.map((l) => ({
    ...l,
    raw: deps.scrubValue(l.raw),
    reason: deps.scrubValue(l.reason) as string,
  }));
  if (flag(args, 'json')) {
    deps.out(JSON.stringify({ total, offset, letters: shown.map((l) => ({ ...l, raw: jsonSafe(l.raw) })) }, null, 2));
    return 0;
  }
  if (total === 0) {
    deps.out('no dead letters');
    return 0;
  }
  deps.out(
    `${total} dead letter(s); showing ${shown.length ? `${offset + 1}-${offset + shown.length}` : 'none'} (oldest first)`,
  );
  for (const l of shown) {
    const head = [
      l.id,
      new Date(l.at).toISOString(),
      l.kind,
      l.source,
      l.deviceId ?? '-',
      `attempts=${l.attempts}`,
    ].join('  ');
    deps.out(head);
    deps.out(`  reason: ${truncate(l.reason, REASON_WIDTH)}`);
    if (l.lastError) deps.out(`  last retry: ${truncate(deps.scrubValue(l.lastError) as string, REASON_WIDTH)}`);
    deps.out(`  raw: ${truncate(showRaw(l.raw), RAW_WIDTH)}`);
  }
  return 0;
}

async function retry(argv: string[], deps: DeadLettersDeps): Promise<number> {
  const args = parseArgs(argv, {});
  const ids = args.positionals.length ? args.positionals : undefined;
  const outcomes = await deps.store.retry(ids, await deps.handlers());
  if (outcomes.length === 0) {
    deps.out('no dead letters to retry');
    return 0;
  }
  for (const o of outcomes) {
    deps.out(
      o.ok
        ? `${o.id}: written, removed`
        : `${o.id}: still failing: ${truncate(deps.scrubValue(o.error ?? '') as string, REASON_WIDTH)}`,
    );
  }
  const failed = outcomes.filter((o) => !o.ok).length;
  deps.out(`retried ${outcomes.length}: ${outcomes.length - failed} written, ${failed} still dead letters`);
  return failed ? 1 : 0;
}

async function drop(argv: string[], deps: DeadLettersDeps): Promise<number> {
  const args = parseArgs(argv, {});
  if (args.positionals.length === 0)
    throw new UsageError('dead-letters drop ID... (see dead-letters list for the ids)');
  const ids = [...new Set(args.positionals)];
  const dropped = await deps.store.drop(ids);
  deps.out(`dropped ${dropped} of ${ids.length}`);
  if (dropped < ids.length) {
    deps.err(`expeed-sync dead-letters: ${ids.length - dropped} id(s) were not dead letters`);
    return 1;
  }
  return 0;
}

/** The command itself, on injected dependencies (tests call this directly). */
export async function deadLetters(argv: string[], deps: DeadLettersDeps): Promise<number> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case 'list':
      return list(rest, deps);
    case 'retry':
      return retry(rest, deps);
    case 'drop':
      return drop(rest, deps);
    default:
      throw new UsageError(sub ? `unknown subcommand "${sub}": ${USAGE}` : USAGE);
  }
}

export const command: Command = {
  usage: USAGE,
  summary: 'what could not be written, with its reason and raw content; retry or drop it',
  async run(argv, ctx) {
    // the app is built only when a letter is retried (it opens InfluxDB and the ingest queue)
    const store = new RedisDeadLetterStore(ctx.redis(), ctx.config.prefix, {
      maxBytes: ctx.config.deadLetters.maxBytes,
    });
    return deadLetters(argv, {
      store,
      handlers: async () => retryHandlers(await ctx.app()),
      out: (line) => ctx.out(line),
      err: (line) => process.stderr.write(`${line}\n`),
      scrubValue: (v) => ctx.scrubber.scrubValue(v),
    });
  },
};
