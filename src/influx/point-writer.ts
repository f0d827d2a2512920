/**
 * The one write path into InfluxDB (1.x `/write` or the 2.x+ API). `write()` resolves only after
 * InfluxDB acknowledged every line it was given; nothing is buffered behind the caller's back.
 * Points InfluxDB refuses (a field type conflict, an invalid field name) are isolated by splitting
 * the batch — guided by the server's message when it names the culprit — and set aside as dead
 * letters with their reason and raw content; the rest of the batch is written.
 */
import type { InfluxApi } from '../base/config.js';
import type { Logger } from '../base/log.js';
import type { DeadLetterStore, PointWriter, SinkPoint, WriteOptions, WriteResult } from './api.js';
import { detectInfluxApi, type WriteApiVersion } from './api-detect.js';
import { ensureDatabase } from './database.js';
import { InfluxRejectedError } from './errors.js';
import { encodePoint, KeyCache, mergeDuplicates, storableFields, withFields, type EncodeReport, type NormalisedPoint } from './line-protocol.js';
import { DEFAULT_RETRY_POLICY, type RetryPolicy } from './retry-policy.js';
import { authHeaders, WriteRequest, type WriteRequestOptions } from './write-request.js';

export interface PointWriterOptions {
  /** default http://127.0.0.1:8086 */
  url: string;
  /** default 'auto': asks the server on first write */
  api: InfluxApi;
  /** bucket (2.x+) or database (1.x), default `expeed` */
  bucket: string;
  org?: string;
  /** 2.x+ token, or `user:password` for 1.x with authentication */
  token?: string;
  /** 1.x retention policy written into (rollups when raw rows expire); default the database's default */
  rp?: string;
  /** EXPEED_RAW_RETENTION, applied where the database is ensured */
  rawRetentionMs?: number;
  /** lines per request, default 5000 */
  batchLines: number;
  /** bytes per request, default 8 MiB (below InfluxDB 1.x's default max-body-size of 25 MB) */
  maxBatchBytes: number;
  /** requests in flight per write() call, default 2 (encoding overlaps with InfluxDB's parsing) */
  concurrency: number;
  retry: RetryPolicy;
  /** per-request timeout, default 30 s */
  timeoutMs: number;
  /** gzip bodies above this many bytes; default 0 = off */
  gzipThreshold: number;
  /** create the 1.x database / check the 2.x bucket before the first write, default true */
  ensureDatabase: boolean;
  deadLetters: Pick<DeadLetterStore, 'add'>;
  logger?: Logger;
  /** replaces the client library's transport for writes */
  transport?: WriteRequestOptions['transport'];
  /** used for API detection and the database check */
  fetch?: typeof fetch;
}

export const DEFAULT_POINT_WRITER_OPTIONS: Omit<PointWriterOptions, 'deadLetters'> = {
  url: 'http://127.0.0.1:8086',
  api: 'auto',
  bucket: 'expeed',
  batchLines: 5000,
  maxBatchBytes: 8 * 1024 * 1024,
  concurrency: 2,
  retry: DEFAULT_RETRY_POLICY,
  timeoutMs: 30_000,
  gzipThreshold: 0,
  ensureDatabase: true,
};

/** A point (or one value of it) InfluxDB will not take, with the reason. */
export interface Rejection {
  point: SinkPoint;
  reason: string;
}

export interface DetailedWriteResult extends WriteResult {
  /** null/undefined values left out of their rows */
  absent: number;
  rejected: Rejection[];
  /** points of which nothing landed (a subset of the points in `rejected`) */
  refused?: SinkPoint[];
}

/** Lines encoded for one request, and the points they came from (same index). */
interface Batch {
  lines: string[];
  raws: SinkPoint[];
}

/** The field a single-line rejection names (`input field "x" on measurement ...`), if the point has it. */
function namedField(message: string, fields: Record<string, unknown>): string | undefined {
  return Object.keys(fields).find((f) => message.includes(`field "${f}" on measurement`));
}

const TYPE_OF: Record<string, string> = { float: 'number', integer: 'number', boolean: 'boolean', string: 'string' };

/**
 * Lines a rejection message points at: InfluxDB 1.x names the first conflicting field and its
 * type, or quotes the lines it could not parse. Only a hint: splitting still verifies each line.
 */
function suspects(message: string, batch: NormalisedPoint[], keys: KeyCache): Set<NormalisedPoint> {
  const found = new Set<NormalisedPoint>();
  const conflict = /input field "(.+?)" on measurement "(.+?)" is (?:type (\w+)|invalid)/.exec(message);
  if (conflict) {
    const [, field, measurement, type] = conflict;
    for (const p of batch) {
      if (p.raw.measurement !== measurement || !Object.hasOwn(p.raw.fields, field)) continue;
      const fields = storableFields(p, keys);
      if (field in fields && (type === undefined || typeof fields[field] === TYPE_OF[type])) found.add(p);
    }
  }
  for (const m of message.matchAll(/unable to parse '([^\n]*?)': /g)) {
    for (const p of batch) if (p.line === m[1]) found.add(p);
  }
  return found;
}

export class InfluxPointWriter implements PointWriter {
  readonly options: PointWriterOptions;
  private readonly keys = new KeyCache();
  private ready?: Promise<WriteRequest>;
  private request?: WriteRequest;
  private resolvedApi?: WriteApiVersion;
  private readonly inFlight = new Set<Promise<unknown>>();
  private closed = false;

  constructor(options: Partial<PointWriterOptions> & Pick<PointWriterOptions, 'deadLetters'>) {
    this.options = { ...DEFAULT_POINT_WRITER_OPTIONS, ...options, retry: { ...DEFAULT_RETRY_POLICY, ...options.retry } };
    if (this.options.batchLines < 1) throw new RangeError('batchLines must be at least 1');
  }

  /** The API in use ('v1' | 'v2'), after asking the server when `api` is 'auto'. */
  async api(): Promise<WriteApiVersion> {
    await this.connect();
    return this.resolvedApi!;
  }

  /**
   * Detects the API and prepares the database once, shared by every write. Not tied to one
   * caller's AbortSignal (the result outlives that call); each step has the request timeout.
   */
  private connect(): Promise<WriteRequest> {
    this.ready ??= (async () => {
      const o = this.options;
      const signal = AbortSignal.timeout(o.timeoutMs);
      const api = o.api === 'auto' ? (await detectInfluxApi({ url: o.url, fetch: o.fetch, signal, headers: authHeaders({ api: 'v2', token: o.token?.includes(':') ? undefined : o.token }) })).api : o.api;
      const target = { url: o.url, api, bucket: o.bucket, org: o.org, token: o.token, rp: o.rp };
      const prepare = () => ensureDatabase({ ...target, rawRetentionMs: o.rawRetentionMs, headers: authHeaders(target), fetch: o.fetch, signal: AbortSignal.timeout(o.timeoutMs) });
      if (o.ensureDatabase) await prepare();
      this.resolvedApi = api;
      this.request = new WriteRequest(target, {
        retry: o.retry,
        timeoutMs: o.timeoutMs,
        gzipThreshold: o.gzipThreshold,
        transport: o.transport,
        logger: o.logger,
        onMissingDatabase: api === 'v1' && o.ensureDatabase ? prepare : undefined,
      });
      return this.request;
    })();
    // a failed start (InfluxDB down, wrong token) is tried again on the next write
    this.ready.catch(() => {
      this.ready = undefined;
    });
    return this.ready;
  }

  async write(points: SinkPoint[], options: WriteOptions): Promise<WriteResult> {
    const result = await this.writeDetailed(points, options.signal);
    // letters are stored only once the whole write succeeded; a write that throws is re-run by its job
    await Promise.all(
      result.rejected.map((r) =>
        this.options.deadLetters.add({ kind: 'point', source: options.source, reason: r.reason, deviceId: r.point.deviceId, raw: r.point }),
      ),
    );
    if (result.rejected.length) this.options.logger?.warn({ source: options.source, deadLettered: result.rejected.length }, 'points set aside as dead letters');
    const { written, merged, conflicts, deadLettered, absent, refused } = result;
    // conflicts and refused only when there were some: the common write's answer stays as it was
    const answer: WriteResult = { written, merged, deadLettered, absent };
    if (conflicts) answer.conflicts = conflicts;
    if (refused?.length) answer.refused = refused;
    return answer;
  }

  /** Like write(), but returns what InfluxDB refused instead of storing it (used to retry dead letters). */
  async writeDetailed(points: SinkPoint[], signal?: AbortSignal): Promise<DetailedWriteResult> {
    if (this.closed) throw new Error('the InfluxDB writer is closed');
    const work = this.run(points, signal);
    this.inFlight.add(work);
    try {
      return await work;
    } finally {
      this.inFlight.delete(work);
    }
  }

  private async run(points: SinkPoint[], signal?: AbortSignal): Promise<DetailedWriteResult> {
    const { points: unique, merged, conflicts } = mergeDuplicates(points);
    const result: DetailedWriteResult = { written: 0, merged, deadLettered: 0, absent: 0, rejected: [], ...(conflicts ? { conflicts } : {}) };
    const { batchLines, maxBatchBytes, concurrency } = this.options;
    let cursor = 0;
    // one report for the whole call: a point that is fine adds nothing to it
    const report: EncodeReport = { absent: 0, problems: [] };
    // Batches are encoded when a lane is free, not all up front, so encoding the next batch
    // overlaps with InfluxDB parsing the previous one (on 2 cores this is most of the speed).
    // A batch is its lines and their points side by side: no object per point.
    const nextBatch = (): Batch | undefined => {
      const lines: string[] = [];
      const raws: SinkPoint[] = [];
      let bytes = 0;
      while (cursor < unique.length && lines.length < batchLines && bytes < maxBatchBytes) {
        const raw = unique[cursor++];
        const line = encodePoint(raw, this.keys, report);
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
      for (let batch = nextBatch(); batch && failure === undefined; batch = failure === undefined ? nextBatch() : undefined) {
        if (batch.lines.length === 0) continue;
        try {
          await this.settleBatch(await this.connect(), batch, result, signal);
        } catch (err) {
          failure ??= err;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, concurrency) }, lane));
    if (failure !== undefined) throw failure;
    result.absent = report.absent;
    result.deadLettered = result.rejected.length;
    return result;
  }

  /** A batch as encoded: its lines, sent as they are, and their points for when InfluxDB refuses some. */
  private async settleBatch(request: WriteRequest, batch: Batch, result: DetailedWriteResult, signal?: AbortSignal): Promise<void> {
    try {
      await request.send(batch.lines.join('\n'), signal);
      result.written += batch.lines.length;
    } catch (err) {
      if (!(err instanceof InfluxRejectedError) || err.scope !== 'points') throw err;
      await this.isolate(request, batch.lines.map((line, i) => ({ raw: batch.raws[i], line })), err, result, signal, false);
    }
  }

  /**
   * Writes a batch; if InfluxDB refuses its lines, isolates the refused ones: the lines the error
   * names first, otherwise halves. Re-sending lines InfluxDB 1.x already took from a partial write
   * only overwrites them (same series and time); each point is counted once, when its own request
   * is acknowledged.
   */
  private async settle(request: WriteRequest, batch: NormalisedPoint[], result: DetailedWriteResult, signal?: AbortSignal, part = false): Promise<void> {
    try {
      await request.send(batch.map((p) => p.line).join('\n'), signal);
      result.written += batch.length;
    } catch (err) {
      if (!(err instanceof InfluxRejectedError) || err.scope !== 'points') throw err;
      await this.isolate(request, batch, err, result, signal, part);
    }
  }

  /** The refused lines of a batch InfluxDB did not take as a whole, found and set aside. */
  private async isolate(request: WriteRequest, batch: NormalisedPoint[], err: InfluxRejectedError, result: DetailedWriteResult, signal: AbortSignal | undefined, part: boolean): Promise<void> {
    if (batch.length === 1) return this.rejectOne(request, batch[0], err.message, result, signal, part);
    const named = suspects(err.message, batch, this.keys);
    if (named.size > 0 && named.size < batch.length) {
      await this.settle(request, batch.filter((p) => !named.has(p)), result, signal);
      await this.settle(request, [...named], result, signal);
      return;
    }
    const half = Math.ceil(batch.length / 2);
    await this.settle(request, batch.slice(0, half), result, signal);
    await this.settle(request, batch.slice(half), result, signal);
  }

  /**
   * One refused line. Its fields are isolated like lines are: the field the server names is set
   * aside at once, otherwise the fields are halved into lines of the same series and time (InfluxDB
   * merges them into one point). The point counts as written once if any of its fields landed.
   */
  private async rejectOne(
    request: WriteRequest,
    point: NormalisedPoint,
    message: string,
    result: DetailedWriteResult,
    signal: AbortSignal | undefined,
    part: boolean,
  ): Promise<void> {
    const fields = storableFields(point, this.keys);
    const names = Object.keys(fields);
    if (names.length === 1) {
      result.rejected.push({ point: point.raw, reason: `${part ? `field "${names[0]}" ` : ''}refused by InfluxDB: ${message}` });
      if (!part) (result.refused ??= []).push(point.raw);
      return;
    }
    const named = namedField(message, fields);
    const half = Math.ceil(names.length / 2);
    const groups = named === undefined ? [names.slice(0, half), names.slice(half)] : [names.filter((n) => n !== named)];
    if (named !== undefined) result.rejected.push({ point: point.raw, reason: `field "${named}" refused by InfluxDB: ${message}` });
    let landed = false;
    for (const group of groups) {
      const sub: DetailedWriteResult = { written: 0, merged: 0, deadLettered: 0, absent: 0, rejected: [] };
      await this.settle(request, [withFields(point, group, this.keys)!], sub, signal, true);
      landed ||= sub.written > 0;
      result.rejected.push(...sub.rejected);
    }
    if (landed) result.written++;
    else if (!part) (result.refused ??= []).push(point.raw);
  }

  /** Waits for writes in progress, then releases the connection. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.inFlight]);
    this.request?.close();
  }
}
