/**
 * Calls `fn` on each item with at most `lanes` calls in flight, starting them in order; once
 * `stop()` says so no lane starts another item (those running finish). `fn` handles its own
 * failures: one that throws rejects the whole call.
 */
export async function inLanes<T>(
  items: readonly T[],
  lanes: number,
  fn: (item: T) => Promise<void>,
  stop: () => boolean = () => false,
): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (!stop() && next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(lanes, items.length)) }, lane));
}
