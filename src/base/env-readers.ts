/**
 * Readers of single environment variables: each takes the variable's name and its default, trims
 * the value, treats an empty one as unset, and throws a ConfigError naming the variable and what
 * is wrong with the value. A URL is never quoted with its credentials.
 */
import nodeCron from 'node-cron';
import { ConfigError } from './config.js';
import type { ClusterNode } from './redis.js';

export type Env = Record<string, string | undefined>;

const DAY_MS = 86_400_000;

export function str(env: Env, name: string, dflt: string): string {
  const v = env[name];
  return v === undefined || v.trim() === '' ? dflt : v.trim();
}

export function optional(env: Env, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v.trim() === '' ? undefined : v.trim();
}

export function int(env: Env, name: string, dflt: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return dflt;
  if (!/^-?\d+$/.test(raw.trim())) throw new ConfigError(name, `expected a whole number, got "${raw}"`);
  const n = Number(raw.trim());
  if (n < min || n > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${n}`);
  return n;
}

export function bool(env: Env, name: string, dflt: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return dflt;
  const v = raw.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off'].includes(v)) return false;
  throw new ConfigError(name, `expected true or false, got "${raw}"`);
}

/** A URL as it may be shown: a user and password in it are secrets (REDIS_URL carries Redis's). */
function withoutCredentials(raw: string): string {
  return raw.replace(/\/\/[^/?#]*@/, '//[REDACTED]@');
}

export function url(env: Env, name: string, dflt: string, protocols: string[]): string {
  const raw = str(env, name, dflt);
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw new ConfigError(name, `not a valid URL: "${withoutCredentials(raw)}"`);
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(name, `expected a ${protocols.join(' or ')} URL, got "${parsed.protocol}"`);
  }
  return raw.replace(/\/+$/, '');
}

/** Parses a duration such as `90s`, `15m`, `2h`, `1d` or plain milliseconds. */
export function parseDuration(raw: string): number | undefined {
  const m = /^(\d+)\s*(ms|s|m|h|d)?$/.exec(raw.trim());
  if (!m) return undefined;
  const n = Number(m[1]);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: DAY_MS }[(m[2] ?? 'ms') as 'ms'];
  return n * unit;
}

export function duration(env: Env, name: string, dflt: number): number {
  const raw = optional(env, name);
  if (raw === undefined) return dflt;
  const ms = parseDuration(raw);
  if (ms === undefined || ms <= 0) {
    throw new ConfigError(name, `expected a duration such as 500ms, 30s, 15m, 2h or 1d, got "${raw}"`);
  }
  return ms;
}

/** Seconds as a plain number (`300`) or a duration (`5m`); 0 is allowed (it turns the check off). */
export function seconds(env: Env, name: string, dflt: number): number {
  const raw = optional(env, name);
  if (raw === undefined) return dflt;
  if (/^\d+$/.test(raw)) return Number(raw);
  const ms = parseDuration(raw);
  if (ms === undefined || ms % 1000 !== 0) {
    throw new ConfigError(name, `expected whole seconds (300) or a duration such as 5m, got "${raw}"`);
  }
  return ms / 1000;
}

export function timezone(env: Env, name: string, dflt: string): string {
  const tz = str(env, name, dflt);
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
  } catch {
    throw new ConfigError(name, `unknown time zone "${tz}" (use an IANA name such as Asia/Shanghai)`);
  }
  return tz;
}

/**
 * node-cron's own validator, the one the scheduler uses: it also refuses steps of 0, values out of
 * range and days that never occur in the named months (`0 0 31 2 *`), which would never fire.
 */
export function cron(env: Env, name: string, dflt: string): string | undefined {
  const raw = env[name];
  if (raw !== undefined && raw.trim() === '') return undefined; // empty disables
  const expr = raw === undefined ? dflt : raw.trim();
  const fields = expr.split(/\s+/);
  if (fields.length !== 5 && fields.length !== 6)
    throw new ConfigError(name, `not a cron expression (5 or 6 fields): "${expr}"`);
  const checked = nodeCron.validateDetailed(expr);
  if (!checked.valid) {
    const why = checked.errors.map((e) => e.message).join('; ') || 'refused by the cron parser';
    throw new ConfigError(name, `invalid cron expression "${expr}": ${why}`);
  }
  return expr;
}

/** Reads an instant: ISO 8601 with or without zone, or a duration back from now such as `30d`. */
export function instant(env: Env, name: string, dflt: number, now: number): number {
  const raw = optional(env, name);
  if (raw === undefined) return dflt;
  const ago = parseDuration(raw);
  if (ago !== undefined) return now - ago;
  const t = Date.parse(raw);
  if (Number.isNaN(t)) throw new ConfigError(name, `expected an ISO 8601 time or a duration such as 30d, got "${raw}"`);
  return t;
}

/** `host:port,host:port,...`; a cluster knows the rest of its nodes, so one answering is enough to start. */
export function clusterNodes(name: string, raw: string | undefined): ClusterNode[] | undefined {
  if (raw === undefined) return undefined;
  return raw.split(',').map((entry) => {
    const m = /^\s*(\[[0-9a-fA-F:.]+\]|[^\s:,[\]]+):(\d{1,5})\s*$/.exec(entry);
    const port = m ? Number(m[2]) : 0;
    if (!m || port < 1 || port > 65535)
      throw new ConfigError(name, `expected host:port,host:port,..., got "${entry.trim()}" in "${raw}"`);
    return { host: m[1].replace(/^\[|\]$/g, ''), port };
  });
}
