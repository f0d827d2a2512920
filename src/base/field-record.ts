/**
 * Objects keyed by names that come from outside: datapoint names from the platform, field names
 * from pushes. Their prototype is one frozen empty object without a prototype of its own, so a
 * datapoint named "__proto__", "toString" or "constructor" is a plain own value, never inherited
 * and never a prototype change. (`Object.create(null)` would do the same for names, but V8 keeps
 * such objects as dictionaries: slower to fill and read, larger, more GC per page or push; objects
 * over a shared prototype keep fast properties.)
 */
const FIELD_RECORD_PROTOTYPE: object = Object.freeze(Object.create(null));

/** An empty record whose every key, whatever its name, can only be an own property. */
export function fieldRecord<T>(): Record<string, T> {
  return Object.create(FIELD_RECORD_PROTOTYPE) as Record<string, T>;
}
