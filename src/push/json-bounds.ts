/**
 * A cheap pass over the raw bytes of a body before JSON.parse: nesting depth and the number of
 * containers and values are bounded, so a body built to be expensive (megabytes of nested or
 * tiny arrays) is refused before the parser and the validators spend the event loop on it. A
 * push is an object holding an array of flat row objects: depth 3, one value per datapoint.
 */
import { PushValidationError } from './push-schema.js';

export interface JsonBounds {
  /** deepest nesting of arrays and objects */
  maxDepth: number;
  /** arrays, objects and scalar values together (a comma or an opening bracket each, roughly) */
  maxItems: number;
  /**
   * bodies up to this many bytes are not scanned: nothing that small can stall the loop (a 2 KiB
   * body nested 1,024 deep parses in well under a millisecond), and the common push (~700 bytes for
   * 10 rows) pays nothing
   */
  scanFromBytes: number;
}

export const DEFAULT_JSON_BOUNDS: JsonBounds = { maxDepth: 16, maxItems: 200_000, scanFromBytes: 2048 };

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_ARRAY = 0x5b;
const OPEN_OBJECT = 0x7b;
const CLOSE_ARRAY = 0x5d;
const CLOSE_OBJECT = 0x7d;
const COMMA = 0x2c;

/**
 * Throws a PushValidationError naming the bound a body exceeds. Not a validator: malformed JSON
 * passes through to JSON.parse, which names the problem better.
 */
export function checkJsonBounds(body: Buffer, bounds: JsonBounds = DEFAULT_JSON_BOUNDS): void {
  if (body.length <= bounds.scanFromBytes) return;
  let depth = 0;
  let items = 0;
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (c === QUOTE) {
      // strings are skipped with native searches: they are most of the bytes of a push
      i = closingQuote(body, i);
      if (i < 0) return; // unterminated: JSON.parse says so
    } else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
      if (++depth > bounds.maxDepth) throw new PushValidationError(`JSON nested deeper than ${bounds.maxDepth} levels`);
      if (++items > bounds.maxItems) throw new PushValidationError(`JSON holds more than ${bounds.maxItems} values`);
    } else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) depth--;
    else if (c === COMMA && ++items > bounds.maxItems)
      throw new PushValidationError(`JSON holds more than ${bounds.maxItems} values`);
  }
}

/** Index of the quote that closes the string opened at `open`, or -1. */
function closingQuote(body: Buffer, open: number): number {
  let j = body.indexOf(QUOTE, open + 1);
  while (j > 0) {
    let backslashes = 0;
    while (body[j - 1 - backslashes] === BACKSLASH) backslashes++;
    if (backslashes % 2 === 0) return j;
    j = body.indexOf(QUOTE, j + 1);
  }
  return -1;
}
