/**
 * The history endpoint: parameter validation as the vendor documents it, and cursor paging.
 *
 * The vendor leaves the paging rules open (docs/platform-api.md §2.3); the simulator serves each
 * plausible reading, chosen by SimulatorOptions.history:
 * - range bounds: `start` inclusive (default) or exclusive, `end` exclusive (default) or inclusive;
 *   without both, all history;
 * - `limit` counts rows (default) or datapoints (whole rows that fit, at least one row a page);
 * - the answer's `cursor` (present only while rows remain, and never in reading `none`) is the time
 *   of the next row not yet served (`next`, default: a page starts AT the cursor), of the page's
 *   last row (`last-inclusive`: the next page repeats it; `last-exclusive`: the next page starts
 *   after it) or of the page's first row (`first-row`, the vendor example read literally).
 * Pages come in the order `history.order` says (with `unordered`, a page's rows shuffled), with
 * timestamps in the form `timestampForm` says (served-times.ts).
 */
import { CODE, MESSAGE } from './result-codes.js';
import { mix } from './prng.js';
import { servedTime } from './served-times.js';
import { servedValues } from './served-values.js';
import { generatedEnd, violation, type Answer, type SimDeviceState, type SimRequest, type SimState } from './state.js';
import type { SimRow } from './types.js';

const MAX_LIMIT = 6000;
const DEFAULT_LIMIT = 100;

function invalid(state: SimState, why: string): Answer {
  violation(state, 'history', why);
  return { json: { result_code: CODE.endpointSpecific, result_message: MESSAGE.badQuery } };
}

export function historyEndpoint(state: SimState, req: SimRequest, dev: SimDeviceState): Answer {
  const q = req.query;
  const limitRaw = q.get('limit');
  let limit = DEFAULT_LIMIT;
  if (limitRaw !== null) {
    if (/^-?\d+$/.test(limitRaw)) state.stats.largestLimit = Math.max(state.stats.largestLimit, Number(limitRaw));
    if (!/^\d+$/.test(limitRaw) || Number(limitRaw) < 1 || Number(limitRaw) > MAX_LIMIT) {
      return invalid(state, `limit must be a whole number 1-${MAX_LIMIT}, got ${JSON.stringify(limitRaw)}`);
    }
    limit = Number(limitRaw);
  }
  const firstRaw = q.get('first');
  if (firstRaw !== null && firstRaw !== '0' && firstRaw !== '1')
    return invalid(state, `first must be 0 or 1, got ${JSON.stringify(firstRaw)}`);
  const order = state.history.order;
  const ascending = order === 'newest-first' ? false : order === 'inverted' ? firstRaw !== '1' : firstRaw === '1';
  const startRaw = q.get('start');
  const endRaw = q.get('end');
  if ((startRaw === null) !== (endRaw === null)) {
    return invalid(state, `start and end must be given together, got only ${startRaw === null ? 'end' : 'start'}`);
  }
  let lo = -Infinity;
  let hi = Infinity;
  if (startRaw !== null && endRaw !== null) {
    const s = state.clock.parse(startRaw);
    const e = state.clock.parse(endRaw);
    if (s === undefined)
      return invalid(state, `start is not a vendor timestamp YYYY-MM-DDTHH-mm-ss-SSS: ${JSON.stringify(startRaw)}`);
    if (e === undefined)
      return invalid(state, `end is not a vendor timestamp YYYY-MM-DDTHH-mm-ss-SSS: ${JSON.stringify(endRaw)}`);
    if (s > e) return invalid(state, `start ${startRaw} is after end ${endRaw}`);
    lo = s;
    hi = e;
  }
  const cursorRaw = q.get('cursor');
  let cursor: number | undefined;
  if (cursorRaw !== null) {
    if (!/^\d{1,16}$/.test(cursorRaw))
      return invalid(state, `cursor must be epoch milliseconds (a long), got ${JSON.stringify(cursorRaw)}`);
    cursor = Number(cursorRaw);
  }
  const idRaw = q.get('id');
  const ids =
    idRaw === null || idRaw.trim() === '' || idRaw.trim() === 'all'
      ? undefined
      : idRaw
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean);

  const page = servePage(state, dev, { lo, hi, ascending, cursor, limit, ids });
  state.stats.historyRowsServed += page.rows.length;
  const json: Record<string, unknown> = { result_code: CODE.ok, result_message: MESSAGE.ok };
  if (page.cursor !== undefined) json.cursor = page.cursor;
  json.data = page.rows.map((r) => ({
    timestamp: servedTime(state.clock, state.timestampForm, r.time),
    ...servedValues(r.values, state.numericStrings),
  }));
  return { json };
}

export interface PageQuery {
  lo: number;
  hi: number;
  ascending: boolean;
  cursor?: number;
  limit: number;
  ids?: string[];
}

/** A page as the endpoint serves it: [lo, hi] are the raw `start`/`end`, read with the reading's bounds. */
export function servePage(state: SimState, dev: SimDeviceState, p: PageQuery): { rows: SimRow[]; cursor?: number } {
  const reading = state.history;
  const lo = reading.start === 'exclusive' && p.lo > -Infinity ? p.lo + 1 : p.lo;
  const hi = reading.end === 'inclusive' && p.hi < Infinity ? p.hi + 1 : p.hi;
  const page = readPage(state, dev, { ...p, lo, hi });
  if (reading.order === 'unordered') shuffle(page.rows);
  return page;
}

/** Shuffles a page's rows in place, the same way for the same page (the hash of its first row's time). */
function shuffle(rows: SimRow[]): void {
  if (rows.length < 2) return;
  const base = mix(0x5eed, rows[0].time);
  for (let i = rows.length - 1; i > 0; i--) {
    const j = mix(base, i) % (i + 1);
    [rows[i], rows[j]] = [rows[j], rows[i]];
  }
}

/** One page of rows in [lo, hi) and the cursor of the next page (undefined on the last page, or never). */
export function readPage(state: SimState, dev: SimDeviceState, p: PageQuery): { rows: SimRow[]; cursor?: number } {
  const reading = state.history;
  let lo = p.lo;
  let hi = p.hi;
  if (p.cursor !== undefined) {
    // last-exclusive: the cursor names the last row served, the page starts after it
    const skip = reading.cursor === 'last-exclusive' ? 1 : 0;
    if (p.ascending) lo = Math.max(lo, p.cursor + skip);
    else hi = Math.min(hi, p.cursor + 1 - skip);
  }
  const byPoints = reading.limit === 'datapoints';
  const rows: SimRow[] = [];
  let points = 0;
  let next: SimRow | undefined;
  const ids = p.ids;
  dev.series.scan(lo, hi, state.range.from, generatedEnd(state), p.ascending, (row) => {
    let out = row;
    if (ids) {
      const values: SimRow['values'] = {};
      let any = false;
      for (const id of ids) {
        if (id in row.values) {
          values[id] = row.values[id];
          any = true;
        }
      }
      if (!any) return true;
      out = { time: row.time, values };
    }
    const width = byPoints ? Object.keys(out.values).length : 1;
    if (rows.length === 0 || (points + width <= p.limit && (reading.pageCap === 0 || rows.length < reading.pageCap))) {
      rows.push(out);
      points += width;
      return true;
    }
    next = out;
    return false;
  });
  if (!next || reading.cursor === 'none') return { rows };
  switch (reading.cursor) {
    case 'next':
      return { rows, cursor: (next as SimRow).time };
    case 'first-row':
      return { rows, cursor: rows[0].time };
    default:
      // last-inclusive repeats the last row: a page of one row would be served forever
      if (reading.cursor === 'last-inclusive' && rows.length < 2) return { rows, cursor: (next as SimRow).time };
      return { rows, cursor: rows[rows.length - 1].time };
  }
}
