/**
 * The one way a component declares its options: a `DEFAULT_<NAME>` constant beside the options
 * type states each default once, and the constructor takes `withDefaults(DEFAULT_<NAME>, options)`.
 * A value passed as `undefined` keeps its default (a plain spread would erase it), so callers pass
 * what they have without guarding each key.
 */
export function withDefaults<D extends object, O extends object>(defaults: D, options: O | undefined): D & O {
  const out = { ...defaults } as Record<string, unknown>;
  for (const [k, v] of Object.entries(options ?? {})) if (v !== undefined) out[k] = v;
  return out as D & O;
}
