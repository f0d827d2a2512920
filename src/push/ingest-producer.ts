import type { JobsOptions, Queue } from 'bullmq';
import type { IngestBatchJob, IngestJob } from '../base/jobs.js';
import { ExpeedError } from '../base/retry.js';
import { INGEST_JOB_OPTIONS } from './ingest.js';
import type { ValidatedPush } from './push-schema.js';
import { withDefaults } from '../base/options.js';

/** The push could not be stored in Redis. The platform should send it again. */
export class EnqueueError extends ExpeedError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, { retryable: true, cause: options?.cause });
  }
}

export type IngestQueue = Pick<Queue<IngestBatchJob>, 'add'>;

export interface IngestProducerOptions {
  /** most pushes stored as one job (default 500) */
  maxPushes: number;
  /** most body bytes stored as one job (default 4 MiB) */
  maxBytes: number;
  /** jobs being stored at once (default 2); pushes arriving meanwhile wait for the next job */
  maxInFlight: number;
  /** a job not stored after this long fails its pushes with EnqueueError, ms (default 5000) */
  timeoutMs: number;
  jobOptions: JobsOptions;
}

export const DEFAULT_INGEST_PRODUCER_OPTIONS: IngestProducerOptions = {
  maxPushes: 500,
  maxBytes: 4 * 1024 * 1024,
  maxInFlight: 2,
  timeoutMs: 5000,
  jobOptions: INGEST_JOB_OPTIONS,
};

interface Waiting {
  push: IngestJob;
  bytes: number;
  resolve(): void;
  reject(err: unknown): void;
}

/**
 * Group commit into the `ingest` queue. A push is stored at once when few are in flight; pushes
 * that arrive while earlier jobs are being stored are gathered and stored together as the next
 * job. Each caller's promise resolves only once Redis holds the job with its push, so an ok is
 * never early — and under load one BullMQ job (one Lua call here, one job cycle in the worker)
 * carries many pushes instead of one.
 */
export class IngestProducer {
  private readonly options: IngestProducerOptions;
  private waiting: Waiting[] = [];
  private waitingBytes = 0;
  private inFlight = 0;
  private scheduled = false;
  private readonly flights = new Set<Promise<void>>();

  constructor(
    private readonly queue: IngestQueue,
    options: Partial<IngestProducerOptions> = {},
  ) {
    this.options = withDefaults(DEFAULT_INGEST_PRODUCER_OPTIONS, options);
  }

  /** Resolves once the push is stored; rejects with EnqueueError (retryable) otherwise. */
  add(push: ValidatedPush, receivedAt: number, bytes = 0): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({
        push: { msgType: push.msgType, receivedAt, body: push.body } as IngestJob,
        bytes,
        resolve,
        reject,
      });
      this.waitingBytes += bytes;
      if (this.waiting.length >= this.options.maxPushes || this.waitingBytes >= this.options.maxBytes) this.flush();
      else if (this.inFlight < this.options.maxInFlight) this.flushSoon();
    });
  }

  /**
   * Flushes once the current turn of the event loop has handled every request it read: pushes
   * that arrived together (one poll of the sockets) become one job instead of one job each.
   */
  private flushSoon(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (this.inFlight < this.options.maxInFlight) this.flush();
    });
  }

  private flush(): void {
    if (this.waiting.length === 0) return;
    const group = this.waiting.splice(0, this.options.maxPushes);
    this.waitingBytes = this.waiting.reduce((n, w) => n + w.bytes, 0);
    this.inFlight++;
    const flight = this.store(group).finally(() => {
      this.inFlight--;
      this.flights.delete(flight);
      // what gathered meanwhile goes out as the next job
      if (this.inFlight < this.options.maxInFlight) this.flush();
    });
    this.flights.add(flight);
  }

  private async store(group: Waiting[]): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new EnqueueError(`Redis did not store the push within ${this.options.timeoutMs} ms`)),
        this.options.timeoutMs,
      );
    });
    try {
      const name = group.length === 1 ? `msg${group[0].push.msgType}` : 'batch';
      await Promise.race([
        this.queue.add(name, { pushes: group.map((w) => w.push) }, this.options.jobOptions),
        timeout,
      ]);
      for (const w of group) w.resolve();
    } catch (err) {
      const e =
        err instanceof EnqueueError
          ? err
          : new EnqueueError(`Redis cannot take the push: ${(err as Error).message}`, { cause: err });
      for (const w of group) w.reject(e);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Stores what is waiting and waits for every job in flight. */
  async close(): Promise<void> {
    while (this.waiting.length > 0 || this.flights.size > 0) {
      this.flush();
      await Promise.allSettled([...this.flights]);
    }
  }
}
