/** What the dashboard tests share of Grafana's template interpolation. */

export interface GrafanaVariable {
  name: string;
  multi?: boolean;
  includeAll?: boolean;
  allValue?: string | null;
}

/** Grafana escapes each value of a multi-value or All variable like this before joining them with `|`. */
export const specialRegexEscape = (v: string) => v.replace(/\\/g, '\\\\\\\\').replace(/[$^*{}[\]'+?.()|]/g, '\\\\$&');

/**
 * Replaces every `$name`, `${name}`, `${name:raw}` (the unescaped `raw`, else `value`) and `[[name]]` of `vars` in `query` (longest names first, so
 * `$__interval_ms` wins over `$__interval`); throws when anything that looks like a macro is left.
 */
export function substituteVariables(query: string, vars: Array<[name: string, value: string, raw?: string]>): string {
  const ordered = [...vars].sort((a, b) => b[0].length - a[0].length);
  let out = query;
  for (const [name, value, raw] of ordered) {
    out = out
      .split(`\${${name}:raw}`)
      .join(raw ?? value)
      .split(`\${${name}}`)
      .join(value)
      .split(`[[${name}]]`)
      .join(value)
      .replace(new RegExp(`\\$${name}(?![\\w])`, 'g'), () => value);
  }
  const left = /\$\{?[A-Za-z_]\w*\}?|\[\[\w+\]\]/.exec(out);
  if (left) throw new Error(`unsubstituted Grafana macro or variable "${left[0]}" in: ${out}`);
  return out;
}

/** Throws a plain error (dashboards are read while tests are collected, before expect() works). */
export function dashboardCheck(file: string): (ok: boolean, problem: string) => void {
  return (ok, problem) => {
    if (!ok) throw new Error(`${file}: ${problem}`);
  };
}

/**
 * Every query target of every panel (panels inside rows included), each checked to use
 * the data source `dsUid`; a panel without a query fails.
 */
export function panelTargets(
  panels: Array<Record<string, any>>,
  dsUid: string,
  check: (ok: boolean, problem: string) => void,
): Array<{ panel: Record<string, any>; target: Record<string, any>; where: string }> {
  const out: Array<{ panel: Record<string, any>; target: Record<string, any>; where: string }> = [];
  const walk = (list: Array<Record<string, any>>) => {
    for (const p of list) {
      if (p.panels) walk(p.panels);
      if (p.type === 'row') continue;
      check(p.datasource?.uid === dsUid, `panel "${p.title}" does not use data source ${dsUid}`);
      check(p.targets?.length > 0, `panel "${p.title}" has no query`);
      for (const t of p.targets) {
        const where = `panel "${p.title}" target ${t.refId}`;
        check(t.datasource?.uid === dsUid, `${where} does not use data source ${dsUid}`);
        out.push({ panel: p, target: t, where });
      }
    }
  };
  walk(panels);
  return out;
}

// ---- Grafana's InfluxQL interpolation (public/app/plugins/datasource/influxdb/datasource.ts) ----
const HOUR = 3_600_000;
const MIN = 60_000;
/** Grafana's InfluxDB data source escapes a single-valued variable's value like this. */
export const regularEscape = (v: string) =>
  Number.isNaN(parseFloat(v)) ? v.replace(/[\\^$*+?.()|[\]{}/]/g, '\\$&') : v;

export interface InfluxSelection {
  name: string;
  /** `all` = the All option; `all-expanded` = All on a variable without allValue (every value joined) */
  values: Record<string, string[] | 'all' | 'all-expanded'>;
  /** Grafana 10+ joins several values as `a|b`; older versions as `(a|b)`; the dashboard must work with both */
  join: 'bare' | 'paren';
  timeFilter: string;
  intervalMs: number;
}

/** A variable's value as the data source formats it: allValue, regex-escaped and joined, or escaped. */
export function formatInfluxVariable(
  v: GrafanaVariable,
  sel: InfluxSelection['values'][string],
  every: string[],
  join: InfluxSelection['join'],
): string {
  if (sel === 'all' && v.allValue) return v.allValue;
  const values = sel === 'all' || sel === 'all-expanded' ? every : sel;
  if (!v.multi && !v.includeAll) return regularEscape(values[0]);
  const escaped = values.map(specialRegexEscape);
  if (escaped.length === 1) return escaped[0];
  return join === 'paren' ? `(${escaped.join('|')})` : escaped.join('|');
}

/** `$__interval` as Grafana writes it: `1d`, `2h`, `10m`, `30s`. */
export const grafanaInterval = (ms: number) =>
  ms % (24 * HOUR) === 0
    ? `${ms / (24 * HOUR)}d`
    : ms % HOUR === 0
      ? `${ms / HOUR}h`
      : ms % MIN === 0
        ? `${ms / MIN}m`
        : `${ms / 1000}s`;

/**
 * An interpolator for one dashboard: every macro, then every template variable (values of each from
 * `every(name)`; a constant variable is its query). `scoped` fixes a variable to one value, as
 * Grafana does inside a repeated panel; `${name:raw}` is then that value unescaped.
 */
export function influxInterpolator(
  dashboard: { templating: { list: Array<GrafanaVariable & { type?: string; query?: unknown }> } },
  every: (name: string) => string[],
) {
  return (
    query: string,
    sel: InfluxSelection,
    from: number,
    to: number,
    scoped: Record<string, string> = {},
  ): string => {
    const vars: Array<[string, string, string?]> = [
      ['__interval_ms', String(sel.intervalMs)],
      ['__interval', grafanaInterval(sel.intervalMs)],
      ['interval', grafanaInterval(sel.intervalMs)],
      ['timeFilter', sel.timeFilter],
      ['__timeFilter', sel.timeFilter],
      ['__from', String(from)],
      ['__to', String(to)],
      ['__range_ms', String(to - from)],
      ['__range_s', String(Math.floor((to - from) / 1000))],
    ];
    for (const v of dashboard.templating.list) {
      if (v.type === 'constant') vars.push([v.name, String(v.query)]);
      else if (scoped[v.name] !== undefined)
        vars.push([v.name, formatInfluxVariable(v, [scoped[v.name]], [], sel.join), scoped[v.name]]);
      else vars.push([v.name, formatInfluxVariable(v, sel.values[v.name] ?? 'all', every(v.name), sel.join)]);
    }
    return substituteVariables(query, vars);
  };
}

/** Whether a target gated by `AND $__interval_ms < N` / `>= N` (any number of them) answers at this interval. */
export function gateOpen(query: string, intervalMs: number): boolean {
  return [...query.matchAll(/\$__interval_ms (<|>=) (\d+)/g)].every((m) =>
    m[1] === '<' ? intervalMs < Number(m[2]) : intervalMs >= Number(m[2]),
  );
}

/** The source tier a query reads: `daily`, `hourly` or `raw`. */
export const tierOf = (query: string) =>
  /"device_data_1d"/.test(query) ? 'daily' : /"device_data_1h"/.test(query) ? 'hourly' : 'raw';

/**
 * What Grafana picks for a hidden retention-policy variable of `dashboard` (`rollup_rp`, `hourly_rp`):
 * the names its query answers (`SHOW RETENTION POLICIES`, first column) that its regex keeps, sorted
 * descending (the variable's sort 2, checked); the first one is the value. `run` runs InfluxQL.
 */
export async function rpOptions(
  dashboard: { templating: { list: Array<{ name: string; query?: unknown; regex?: string; sort?: number }> } },
  name: string,
  run: (query: string) => Promise<Array<{ values: unknown[][] }>>,
): Promise<string[]> {
  const v = dashboard.templating.list.find((x) => x.name === name);
  if (!v || typeof v.query !== 'string' || !v.regex)
    throw new Error(`dashboard has no query variable "${name}" with a regex`);
  if (v.sort !== 2) throw new Error(`variable "${name}" is not sorted descending (sort 2) but ${v.sort}`);
  const regex = new RegExp(v.regex.slice(1, v.regex.lastIndexOf('/')));
  const names = (await run(v.query)).flatMap((s) => s.values.map((r) => String(r[0]))).filter((n) => regex.test(n));
  return names.sort().reverse();
}

/** The three layouts of the rollup tiers the dashboard tests run in (InfluxDB 1.x), by what the service is set to. */
export const RP_LAYOUTS = [
  { name: 'default RP (no retention)', rawRetentionMs: undefined, hourlyRetentionMs: undefined },
  { name: 'rollups_forever (EXPEED_RAW_RETENTION=90d)', rawRetentionMs: 90 * 24 * HOUR, hourlyRetentionMs: undefined },
  {
    name: 'rollups_hourly + rollups_forever (EXPEED_HOURLY_RETENTION=400d)',
    rawRetentionMs: undefined,
    hourlyRetentionMs: 400 * 24 * HOUR,
  },
] as const;
