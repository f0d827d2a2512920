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
