/**
 * Dead-letter retry of kind 'push' for `expeed-sync dead-letters retry`: the kept body is
 * validated again and enqueued on the app's `ingest` queue, where the service's workers take it.
 */
import type { RetryHandler } from '../dead-letters/store.js';
import { parsePlatformTime } from '../platform/timestamp.js';
import { pushRetryHandler } from '../push/server.js';
import type { App } from './app.js';

export async function createRetryHandler(app: Pick<App, 'ingestQueue' | 'config'>): Promise<RetryHandler> {
  const ingest = await app.ingestQueue();
  return pushRetryHandler({ queue: ingest.queue, parseTime: (raw) => parsePlatformTime(raw, app.config.timezone) });
}
