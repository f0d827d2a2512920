/**
 * A row's values as the simulator sends them: as generated, or, with the option numericStrings,
 * every number as a JSON string (`21.5` as `"21.5"`), the way some platforms serve datapoints.
 */

/** The values to put on the wire; the row itself is never changed. */
export function servedValues<V>(values: Record<string, V>, numericStrings: boolean): Record<string, V | string> {
  if (!numericStrings) return values;
  const out: Record<string, V | string> = {};
  for (const k of Object.keys(values)) {
    const v = values[k];
    out[k] = typeof v === 'number' ? String(v) : v;
  }
  return out;
}
