/**
 * Dead-letter retry of kind 'push' for `expeed-sync dead-letters retry`: the kept body is
 * validated again and enqueued on the `ingest` queue, where the service's workers take it.
 */
import type { CommandContext } from '../cli/context.js';
import type { RetryHandler } from '../dead-letters/store.js';
import { parsePlatformTime } from '../platform/timestamp.js';
import { openIngestQueue, pushRetryHandler } from '../push/server.js';

export async function createRetryHandler(ctx: CommandContext): Promise<RetryHandler> {
  const ingest = await openIngestQueue(ctx.config, ctx.config.prefix, ctx.log);
  ctx.onClose(() => ingest.close());
  return pushRetryHandler({ queue: ingest.queue, parseTime: (raw) => parsePlatformTime(raw, ctx.config.timezone) });
}
