/**
 * The dead-letter retry handlers, one per kind of letter, each imported here: a kind without a
 * handler does not compile. Points and rows are written through the app's one write path (the
 * writer that marks rollup hours), pushes go back on the `ingest` queue.
 */
import type { DeadLetterKind } from '../influx/api.js';
import type { RetryHandler } from '../dead-letters/store.js';
import { retryPoint } from '../dead-letters/retry-point.js';
import type { App } from './app.js';
import { retryPush } from './retry-push.js';
import { retryRow } from './retry-row.js';

export function retryHandlers(
  app: Pick<App, 'writer' | 'config' | 'ingestQueue'>,
): Record<DeadLetterKind, RetryHandler> {
  return {
    point: retryPoint(app.writer),
    row: retryRow({ writer: app.writer, timezone: app.config.timezone }),
    push: retryPush(app),
  };
}
