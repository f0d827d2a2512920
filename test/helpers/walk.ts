import type { DataRow, DeviceRef, HistoryPage, PlatformClient } from '../../src/platform/api.js';
import { walkHistory, type HistoryWalkOptions, type WalkEnd } from '../../src/platform/history-walker.js';

/** Drives walkHistory (the generator the backfill runner uses) to its end; what it yielded, together. */
export async function walkAll(
  client: Pick<PlatformClient, 'history'>,
  device: DeviceRef,
  options: Pick<HistoryWalkOptions, 'from' | 'to'> & Partial<HistoryWalkOptions>,
): Promise<{ rows: DataRow[]; unreadable: HistoryPage['unreadable']; pages: number; end: WalkEnd }> {
  const rows: DataRow[] = [];
  const unreadable: HistoryPage['unreadable'] = [];
  let pages = 0;
  const walk = walkHistory(client, device, options);
  for (;;) {
    const next = await walk.next();
    if (next.done) return { rows, unreadable, pages, end: next.value };
    pages++;
    rows.push(...next.value.rows);
    unreadable.push(...next.value.unreadable);
  }
}
