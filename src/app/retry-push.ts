/**
 * Dead-letter retry of kind 'push': the kept body is validated again and enqueued on the `ingest`
 * queue, where the service's workers take it. The queue is opened at the first push letter retried.
 */
import type { RetryHandler } from '../dead-letters/store.js';
import { parsePlatformTime } from '../platform/timestamp.js';
import { pushRetryHandler } from '../push/push-retry.js';
import type { App } from './app.js';

export function retryPush(app: Pick<App, 'ingestQueue' | 'config'>): RetryHandler {
  let handler: Promise<RetryHandler> | undefined;
  return async (letter) => {
    handler ??= app
      .ingestQueue()
      .then((ingest) =>
        pushRetryHandler({ queue: ingest.queue, parseTime: (raw) => parsePlatformTime(raw, app.config.timezone) }),
      );
    await (
      await handler
    )(letter);
  };
}
