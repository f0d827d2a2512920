/**
 * The history endpoint: parameter validation as the vendor documents it, and cursor paging.
 *
 * Paging rules of the simulator (the vendor leaves them open; docs/platform-api.md records them):
 * - the range is [start, end): start inclusive, end exclusive; without both, all history;
 * - a page starts AT the cursor (inclusive) in the page direction (first=1 ascending, first=0
 *   descending) and holds at most `limit` rows (a row = one timestamp);
 * - the answer's `cursor` is the time of the next row not yet served, so pages do not overlap;
 *   with `boundaryRepeat` it is the time of the page's last row, which the next page repeats;
 * - the last page carries no `cursor`.
 */
import { CODE, MESSAGE } from './result-codes.js';
import { generatedEnd, violation, type Answer, type SimDeviceState, type SimRequest, type SimState } from './state.js';
import type { SimRow } from './types.js';

export const MAX_LIMIT = 6000;
export const DEFAULT_LIMIT = 100;

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
  if (firstRaw !== null && firstRaw !== '0' && firstRaw !== '1') return invalid(state, `first must be 0 or 1, got ${JSON.stringify(firstRaw)}`);
  const ascending = firstRaw === '1';
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
    if (s === undefined) return invalid(state, `start is not a vendor timestamp YYYY-MM-DDTHH-mm-ss-SSS: ${JSON.stringify(startRaw)}`);
    if (e === undefined) return invalid(state, `end is not a vendor timestamp YYYY-MM-DDTHH-mm-ss-SSS: ${JSON.stringify(endRaw)}`);
    if (s > e) return invalid(state, `start ${startRaw} is after end ${endRaw}`);
    lo = s;
    hi = e;
  }
  const cursorRaw = q.get('cursor');
  let cursor: number | undefined;
  if (cursorRaw !== null) {
    if (!/^\d{1,16}$/.test(cursorRaw)) return invalid(state, `cursor must be epoch milliseconds (a long), got ${JSON.stringify(cursorRaw)}`);
    cursor = Number(cursorRaw);
  }
  const idRaw = q.get('id');
  const ids = idRaw === null || idRaw.trim() === '' || idRaw.trim() === 'all' ? undefined : idRaw.split(',').map((s) => s.trim()).filter(Boolean);

  const page = readPage(state, dev, { lo, hi, ascending, cursor, limit, ids });
  state.stats.historyRowsServed += page.rows.length;
  const json: Record<string, unknown> = { result_code: CODE.ok, result_message: MESSAGE.ok };
  if (page.cursor !== undefined) json.cursor = page.cursor;
  json.data = page.rows.map((r) => ({ timestamp: state.clock.format(r.time), ...r.values }));
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

/** One page of rows and the cursor of the next page (undefined on the last page). */
export function readPage(state: SimState, dev: SimDeviceState, p: PageQuery): { rows: SimRow[]; cursor?: number } {
  let lo = p.lo;
  let hi = p.hi;
  if (p.cursor !== undefined) {
    if (p.ascending) lo = Math.max(lo, p.cursor);
    else hi = Math.min(hi, p.cursor + 1);
  }
  const rows: SimRow[] = [];
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
    if (rows.length < p.limit) {
      rows.push(out);
      return true;
    }
    next = out;
    return false;
  });
  if (!next) return { rows };
  // repeating needs a page of 2+, or a page of one row would be served forever
  const cursor = state.boundaryRepeat && rows.length > 1 ? rows[rows.length - 1].time : (next as SimRow).time;
  return { rows, cursor };
}
