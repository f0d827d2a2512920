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
 * Replaces every `$name`, `${name}` and `[[name]]` of `vars` in `query` (longest names first, so
 * `$__interval_ms` wins over `$__interval`); throws when anything that looks like a macro is left.
 */
export function substituteVariables(query: string, vars: Array<[name: string, value: string]>): string {
  const ordered = [...vars].sort((a, b) => b[0].length - a[0].length);
  let out = query;
  for (const [name, value] of ordered) {
    out = out.split(`\${${name}}`).join(value).split(`[[${name}]]`).join(value).replace(new RegExp(`\\$${name}(?![\\w])`, 'g'), () => value);
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
