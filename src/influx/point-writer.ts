/**
 * The one write path into InfluxDB (1.x `/write` or the 2.x+ API). `write()` resolves only after
 * InfluxDB acknowledged every line it was given; nothing is buffered behind the caller's back.
 * Points InfluxDB refuses, and values that cannot be stored, are set aside as dead letters with
 * their reason and raw content; the rest of the batch is written. The parts: the connection
 * (connection.ts: API detection, database), the lanes that encode and send (write-lanes.ts), and
 * the isolation of refused lines and fields (refusals.ts).
 */
import { DEFAULT_NUMERIC_STRINGS, type NumericStringsMode } from '../base/config.js';
import type { Logger } from '../base/log.js';
import type { DeadLetterStore, DetailedWriteResult, PointWriter, SinkPoint, WriteOptions, WriteResult } from './api.js';
import type { WriteApiVersion } from './api-detect.js';
import { openInfluxConnection, type InfluxConnectionOptions } from './connection.js';
import { KeyCache } from './keys.js';
import { NumericStrings } from './numeric-strings.js';
import { DEFAULT_RETRY_POLICY } from './retry-policy.js';
import type { WriteRequest } from './write-request.js';
import { writeInLanes } from './write-lanes.js';

export interface PointWriterOptions extends InfluxConnectionOptions {
  /** lines per request, default 5000 */
  batchLines: number;
  /** bytes per request, default 8 MiB (below InfluxDB 1.x's default max-body-size of 25 MB) */
  maxBatchBytes: number;
  /** requests in flight per write() call, default 2 (encoding overlaps with InfluxDB's parsing) */
  concurrency: number;
  /** a datapoint string that is a plain decimal number: written as a float (`number`) or as it came (`string`) */
  numericStrings: NumericStringsMode;
  deadLetters: Pick<DeadLetterStore, 'add'>;
  logger?: Logger;
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
  numericStrings: DEFAULT_NUMERIC_STRINGS,
};

export class InfluxPointWriter implements PointWriter {
  readonly options: PointWriterOptions;
  private readonly keys = new KeyCache();
  /** the rule for numeric strings, and the fields InfluxDB holds as strings (learned from its refusals) */
  readonly strings: NumericStrings;
  private ready?: Promise<WriteRequest>;
  private request?: WriteRequest;
  private resolvedApi?: WriteApiVersion;
  private readonly inFlight = new Set<Promise<unknown>>();
  private closed = false;

  constructor(options: Partial<PointWriterOptions> & Pick<PointWriterOptions, 'deadLetters'>) {
    this.options = {
      ...DEFAULT_POINT_WRITER_OPTIONS,
      ...options,
      retry: { ...DEFAULT_RETRY_POLICY, ...options.retry },
    };
    if (this.options.batchLines < 1) throw new RangeError('batchLines must be at least 1');
    this.strings = new NumericStrings(this.options.numericStrings, this.options.logger);
  }

  /** The API in use ('v1' | 'v2'), after asking the server when `api` is 'auto'. */
  async api(): Promise<WriteApiVersion> {
    await this.connect();
    return this.resolvedApi!;
  }

  /** Opens the connection once, shared by every write; a failed start (InfluxDB down, wrong token) is tried again on the next write. */
  private connect(): Promise<WriteRequest> {
    this.ready ??= openInfluxConnection(this.options).then(({ api, request }) => {
      this.resolvedApi = api;
      this.request = request;
      return request;
    });
    this.ready.catch(() => {
      this.ready = undefined;
    });
    return this.ready;
  }

  async write(points: SinkPoint[], options: WriteOptions): Promise<WriteResult> {
    const result = await this.writeDetailed(points, options.signal);
    if (options.setAside === false) return { ...result, deadLettered: 0 };
    // letters are stored only once the whole write succeeded; a write that throws is re-run by its job
    await Promise.all(
      result.rejected.map((r) =>
        this.options.deadLetters.add({
          kind: 'point',
          source: options.source,
          reason: r.reason,
          deviceId: r.point.deviceId,
          raw: r.point,
        }),
      ),
    );
    if (result.rejected.length)
      this.options.logger?.warn(
        { source: options.source, deadLettered: result.rejected.length },
        'points set aside as dead letters',
      );
    const { written, merged, conflicts, deadLettered, absent, refused } = result;
    // conflicts and refused only when there were some: the common answer carries the four counts
    const answer: WriteResult = { written, merged, deadLettered, absent };
    if (conflicts) answer.conflicts = conflicts;
    if (refused?.length) answer.refused = refused;
    return answer;
  }

  /** The write itself: returns what InfluxDB refused; write() stores that as dead letters unless told not to. */
  async writeDetailed(points: SinkPoint[], signal?: AbortSignal): Promise<DetailedWriteResult> {
    if (this.closed) throw new Error('the InfluxDB writer is closed');
    const { batchLines, maxBatchBytes, concurrency } = this.options;
    const work = writeInLanes(points, {
      batchLines,
      maxBatchBytes,
      concurrency,
      keys: this.keys,
      strings: this.strings,
      connect: () => this.connect(),
      signal,
    });
    this.inFlight.add(work);
    try {
      return await work;
    } finally {
      this.inFlight.delete(work);
    }
  }

  /** Waits for writes in progress, then releases the connection. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.inFlight]);
    this.request?.close();
  }
}
