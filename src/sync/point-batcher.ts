import type { PointWriter, SinkPoint, WriteOptions, WriteResult } from '../influx/api.js';

/**
 * Gathers the points of many small callers (one per ingest job: a push carries ~10 rows) into
 * few large writes. InfluxDB takes one 5000-line request far faster than 500 ten-line ones, and
 * the webhook's throughput end to end is bounded by the write rate.
 *
 * Group commit, like the webhook's producer: while fewer than `maxInFlight` writes are running,
 * what arrived in one turn of the event loop is written at once; otherwise points gather until a
 * write finishes and then go out together. Writes are small and immediate when the load is light,
 * and grow by themselves with the load — no timer to tune, and no caller waits for one.
 *
 * Each caller's promise settles with the write that carried its points: it resolves only after
 * InfluxDB acknowledged them and rejects with the writer's error otherwise, so a job is never
 * completed before its points are stored.
 */
export interface PointBatcherOptions {
  /** a batch is written as soon as it holds this many points (default 5000) */
  maxPoints: number;
  /**
   * writes running at once (default 1). Measured with bench/webhook.ts: with one write in flight
   * the next batch gathers everything that arrives meanwhile, so the write count stays low and
   * InfluxDB's per-request cost does not take CPU from the webhook.
   */
  maxInFlight: number;
}

export const DEFAULT_POINT_BATCHER_OPTIONS: PointBatcherOptions = { maxPoints: 5000, maxInFlight: 1 };

interface Waiter {
  resolve(result: WriteResult): void;
  reject(err: unknown): void;
}

interface Batch {
  points: SinkPoint[];
  waiters: Waiter[];
}

export class PointBatcher implements PointWriter {
  private readonly options: PointBatcherOptions;
  /** one open batch per source: dead letters and metrics keep the source of each point */
  private readonly open = new Map<string, Batch>();
  private readonly inFlight = new Set<Promise<unknown>>();
  private scheduled = false;
  private closed = false;

  constructor(
    private readonly writer: Pick<PointWriter, 'write'>,
    options: Partial<PointBatcherOptions> = {},
  ) {
    this.options = { ...DEFAULT_POINT_BATCHER_OPTIONS, ...options };
    if (!(this.options.maxInFlight >= 1)) throw new RangeError('maxInFlight must be at least 1');
  }

  write(points: SinkPoint[], options: WriteOptions): Promise<WriteResult> {
    if (this.closed) return Promise.reject(new Error('point batcher is closed'));
    if (points.length === 0) return Promise.resolve({ written: 0, merged: 0, deadLettered: 0 });
    return new Promise<WriteResult>((resolve, reject) => {
      let batch = this.open.get(options.source);
      if (!batch) {
        batch = { points: [], waiters: [] };
        this.open.set(options.source, batch);
      }
      for (const p of points) batch.points.push(p);
      batch.waiters.push({ resolve, reject });
      // a full batch goes out whatever is in flight: a burst must not grow one write without bound
      if (batch.points.length >= this.options.maxPoints) this.flush(options.source);
      else this.flushSoon();
    });
  }

  /** At the end of this turn of the event loop, if a write may start. */
  private flushSoon(): void {
    if (this.scheduled || this.inFlight.size >= this.options.maxInFlight) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.flushOpen();
    });
  }

  /** Writes the open batches, as many as the in-flight bound allows. */
  private flushOpen(): void {
    for (const source of [...this.open.keys()]) {
      if (this.inFlight.size >= this.options.maxInFlight) return;
      this.flush(source);
    }
  }

  private flush(source: string): void {
    const batch = this.open.get(source);
    if (!batch) return;
    this.open.delete(source);
    const write = this.writer.write(batch.points, { source }).then(
      (result) => {
        for (const w of batch.waiters) w.resolve(result);
      },
      (err: unknown) => {
        for (const w of batch.waiters) w.reject(err);
      },
    );
    this.inFlight.add(write);
    void write.finally(() => {
      this.inFlight.delete(write);
      // what gathered while this write ran goes out now
      if (this.open.size > 0) this.flushSoon();
    });
  }

  /** Writes what is waiting now and waits for every write in flight. */
  async drain(): Promise<void> {
    while (this.open.size > 0 || this.inFlight.size > 0) {
      for (const source of [...this.open.keys()]) this.flush(source);
      await Promise.allSettled([...this.inFlight]);
    }
  }

  /** Flushes and stops taking points; the underlying writer is closed by its owner. */
  async close(): Promise<void> {
    await this.drain();
    this.closed = true;
  }
}
