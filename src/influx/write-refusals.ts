/**
 * What InfluxDB refused in a batch it did not take as a whole (a field type conflict, an invalid
 * field name), found and set aside while the rest is written. The server's message is only a
 * hint: InfluxDB 1.x names the first conflicting field and its type, or quotes the lines it could
 * not parse; each suspect is verified by sending it on its own, and without a hint the batch is
 * halved. Re-sending lines InfluxDB 1.x already took from a partial write only overwrites them
 * (same series and time); each point is counted once, when its own request is acknowledged. A
 * field type conflict for numeric strings the writer turned into floats, on a field InfluxDB holds
 * as a string, is not a refusal of the rows: the field is kept as a string (NumericStrings.keep)
 * and the batch written again with those values as strings.
 */
import type { DetailedWriteResult } from './api.js';
import { InfluxRejectedError } from './errors.js';
import type { KeyCache } from './keys.js';
import { storableFields, withFields, type NormalisedPoint } from './line-protocol.js';
import type { NumericStrings } from './numeric-strings.js';
import type { WriteRequest } from './write-request.js';

export interface RefusalContext {
  request: Pick<WriteRequest, 'send'>;
  keys: KeyCache;
  /** the writer's rule for numeric strings */
  strings?: NumericStrings;
  signal?: AbortSignal;
}

/** The field a single-line rejection names (`input field "x" on measurement ...`), if the point has it. */
function namedField(message: string, fields: Record<string, unknown>): string | undefined {
  return Object.keys(fields).find((f) => message.includes(`field "${f}" on measurement`));
}

const TYPE_OF: Record<string, string> = { float: 'number', integer: 'number', boolean: 'boolean', string: 'string' };

/** Lines a rejection message points at. */
function suspects(
  message: string,
  batch: NormalisedPoint[],
  keys: KeyCache,
  strings?: NumericStrings,
): Set<NormalisedPoint> {
  const found = new Set<NormalisedPoint>();
  const conflict = /input field "(.+?)" on measurement "(.+?)" is (?:type (\w+)|invalid)/.exec(message);
  if (conflict) {
    const [, field, measurement, type] = conflict;
    for (const p of batch) {
      if (p.raw.measurement !== measurement || !Object.hasOwn(p.raw.fields, field)) continue;
      const fields = storableFields(p, keys, strings);
      if (field in fields && (type === undefined || typeof fields[field] === TYPE_OF[type])) found.add(p);
    }
  }
  for (const m of message.matchAll(/unable to parse '([^\n]*?)': /g)) {
    for (const p of batch) if (p.line === m[1]) found.add(p);
  }
  return found;
}

/** Writes a batch; if InfluxDB refuses its lines, isolates the refused ones. */
async function settle(
  ctx: RefusalContext,
  batch: NormalisedPoint[],
  result: DetailedWriteResult,
  part = false,
): Promise<void> {
  try {
    await ctx.request.send(batch.map((p) => p.line).join('\n'), ctx.signal);
    result.written += batch.length;
  } catch (err) {
    if (!(err instanceof InfluxRejectedError) || err.scope !== 'points') throw err;
    await isolateRefused(ctx, batch, err, result, part);
  }
}

/**
 * The refused lines of a batch InfluxDB did not take as a whole: the lines the error names first,
 * otherwise halves. `part`: the batch is some fields of one point being isolated.
 */
export async function isolateRefused(
  ctx: RefusalContext,
  batch: NormalisedPoint[],
  err: InfluxRejectedError,
  result: DetailedWriteResult,
  part = false,
): Promise<void> {
  const rewritten = asStrings(ctx, batch, err.message);
  if (rewritten) return settle(ctx, rewritten, result, part);
  if (batch.length === 1) return rejectOne(ctx, batch[0], err.message, result, part);
  const named = suspects(err.message, batch, ctx.keys, ctx.strings);
  if (named.size > 0 && named.size < batch.length) {
    await settle(
      ctx,
      batch.filter((p) => !named.has(p)),
      result,
    );
    await settle(ctx, [...named], result);
    return;
  }
  const half = Math.ceil(batch.length / 2);
  await settle(ctx, batch.slice(0, half), result);
  await settle(ctx, batch.slice(half), result);
}

/**
 * One refused line. Its fields are isolated like lines are: the field the server names is set
 * aside at once, otherwise the fields are halved into lines of the same series and time (InfluxDB
 * merges them into one point). The point counts as written once if any of its fields landed.
 */
async function rejectOne(
  ctx: RefusalContext,
  point: NormalisedPoint,
  message: string,
  result: DetailedWriteResult,
  part: boolean,
): Promise<void> {
  const fields = storableFields(point, ctx.keys, ctx.strings);
  const names = Object.keys(fields);
  if (names.length === 1) {
    result.rejected.push({
      point: point.raw,
      reason: `${part ? `field "${names[0]}" ` : ''}refused by InfluxDB: ${message}`,
    });
    if (!part) (result.refused ??= []).push(point.raw);
    return;
  }
  const named = namedField(message, fields);
  const half = Math.ceil(names.length / 2);
  const groups = named === undefined ? [names.slice(0, half), names.slice(half)] : [names.filter((n) => n !== named)];
  if (named !== undefined)
    result.rejected.push({ point: point.raw, reason: `field "${named}" refused by InfluxDB: ${message}` });
  let landed = false;
  for (const group of groups) {
    const sub: DetailedWriteResult = { written: 0, merged: 0, deadLettered: 0, absent: 0, rejected: [] };
    await settle(ctx, [withFields(point, group, ctx.keys, ctx.strings)!], sub, true);
    landed ||= sub.written > 0;
    result.rejected.push(...sub.rejected);
  }
  if (landed) result.written++;
  else if (!part) (result.refused ??= []).push(point.raw);
}

/**
 * On "input field F ... is type float, already exists as type string" for a `device_data` field
 * whose values in the batch include numeric strings the writer converted: F is kept as a string
 * and the batch comes back re-encoded (those values as strings again). Undefined when the
 * conflict is not of that kind or no line changes (a real number in a string field is refused).
 */
function asStrings(ctx: RefusalContext, batch: NormalisedPoint[], message: string): NormalisedPoint[] | undefined {
  const conflict = /input field "(.+?)" on measurement "(.+?)" is type float, already exists as type string/.exec(
    message,
  );
  if (!conflict || ctx.strings === undefined) return undefined;
  const [, field, measurement] = conflict;
  const strings = ctx.strings;
  if (
    !batch.some(
      (p) =>
        p.raw.measurement === measurement &&
        Object.hasOwn(p.raw.fields, field) &&
        strings.converts(measurement, p.raw.fields[field]),
    )
  )
    return undefined;
  strings.keep(measurement, field);
  let changed = false;
  const rebuilt = batch.map((p) => {
    const again = withFields(p, p.only ?? Object.keys(p.raw.fields), ctx.keys, strings) ?? p;
    if (again.line !== p.line) changed = true;
    return again.line === p.line ? p : again;
  });
  return changed ? rebuilt : undefined;
}
