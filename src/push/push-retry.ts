/**
 * Dead-letter retry of kind 'push': the kept body is read and validated again (the code or the
 * configuration may have been fixed since) and enqueued as if it had just arrived — with the
 * time it was set aside, so a status push keeps its original time. Signatures are not checked
 * again: the operator retrying it vouches for it.
 */
import type { RetryHandler } from '../dead-letters/store.js';
import { IngestProducer, type IngestQueue } from './ingest-producer.js';
import { readPushBody, validatePush } from './push-schema.js';
import { bodyOfLetter } from './raw-body.js';

export function pushRetryHandler(options: {
  queue: IngestQueue;
  parseTime: (raw: string | number) => number;
  timeoutMs?: number;
}): RetryHandler {
  return async (letter) => {
    const push = validatePush(readPushBody(bodyOfLetter(letter.raw)), { parseTime: options.parseTime });
    // a job of its own; throws EnqueueError (retryable) when Redis cannot store it
    await new IngestProducer(options.queue, { timeoutMs: options.timeoutMs ?? 5000 }).add(push, letter.at);
  };
}
