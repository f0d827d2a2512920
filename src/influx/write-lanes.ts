/**
 * One write() call's points, merged, encoded into batches and sent over a few lanes at once.
 * Batches are encoded when a lane is free, not all up front, so encoding the next batch overlaps
 * with InfluxDB parsing the previous one (on 2 cores this is most of the speed). The first failure
 * of a request stops every lane and is thrown: the caller's job runs the write again.
 */
import type { DetailedWriteResult, SinkPoint } from './api.js';
import { InfluxRejectedError } from './errors.js';
import type { KeyCache } from './keys.js';
import type { NumericStrings } from './numeric-strings.js';
import { encodePoint, type EncodeReport } from './line-protocol.js';
import { mergeDuplicates } from './merge-duplicates.js';
import { isolateRefused } from './write-refusals.js';
import type { WriteRequest } from './write-request.js';

export interface LaneOptions {
  /** lines per request */
  batchLines: number;
  /** bytes per request */
  maxBatchBytes: number;
  /** requests in flight at once */
  concurrency: number;
  keys: KeyCache;
  /** how numeric strings are written (EXPEED_NUMERIC_STRINGS) */
  strings?: NumericStrings;
  /** the connection, opened on the first batch that has lines */
  connect: () => Promise<WriteRequest>;
  signal?: AbortSignal;
}

/** Lines encoded for one request, and the points they came from (same index): no object per point. */
interface Batch {
  lines: string[];
  raws: SinkPoint[];
}

export async function writeInLanes(points: SinkPoint[], o: LaneOptions): Promise<DetailedWriteResult> {
  const { points: unique, merged, conflicts } = mergeDuplicates(points);
  const result: DetailedWriteResult = {
    written: 0,
    merged,
    deadLettered: 0,
    absent: 0,
    rejected: [],
    ...(conflicts ? { conflicts } : {}),
  };
  let cursor = 0;
  // one report for the whole call: a point that is fine adds nothing to it
  const report: EncodeReport = { absent: 0, problems: [] };
  const nextBatch = (): Batch | undefined => {
    const lines: string[] = [];
    const raws: SinkPoint[] = [];
    let bytes = 0;
    while (cursor < unique.length && lines.length < o.batchLines && bytes < o.maxBatchBytes) {
      const raw = unique[cursor++];
      const line = encodePoint(raw, o.keys, report, o.strings);
      if (report.problems.length) {
        for (const p of report.problems) result.rejected.push({ point: raw, reason: p.reason });
        report.problems.length = 0;
        if (line === undefined) (result.refused ??= []).push(raw);
      }
      if (line !== undefined) {
        lines.push(line);
        raws.push(raw);
        // string length approximates bytes well enough for a safety cap (non-ASCII counts low)
        bytes += line.length + 1;
      }
    }
    return lines.length === 0 && cursor >= unique.length ? undefined : { lines, raws };
  };
  let failure: unknown;
  const lane = async () => {
    for (
      let batch = nextBatch();
      batch && failure === undefined;
      batch = failure === undefined ? nextBatch() : undefined
    ) {
      if (batch.lines.length === 0) continue;
      try {
        await sendBatch(await o.connect(), batch, result, o);
      } catch (err) {
        failure ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, o.concurrency) }, lane));
  if (failure !== undefined) throw failure;
  result.absent = report.absent;
  result.deadLettered = result.rejected.length;
  return result;
}

/** A batch as encoded: its lines, sent as they are, and their points for when InfluxDB refuses some. */
async function sendBatch(
  request: WriteRequest,
  batch: Batch,
  result: DetailedWriteResult,
  o: LaneOptions,
): Promise<void> {
  try {
    await request.send(batch.lines.join('\n'), o.signal);
    result.written += batch.lines.length;
  } catch (err) {
    if (!(err instanceof InfluxRejectedError) || err.scope !== 'points') throw err;
    const lines = batch.lines.map((line, i) => ({ raw: batch.raws[i], line }));
    await isolateRefused({ request, keys: o.keys, strings: o.strings, signal: o.signal }, lines, err, result);
  }
}
