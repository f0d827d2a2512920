/** Devices per GapFinder.scanMany call in the gap check and `expeed-sync gaps`. */
export const GAP_CHUNK_SIZE = 250;

/**
 * The gap check's device chunks: `ids` in order, at most `size` per chunk (at least one device
 * per chunk whatever `size` says), so one GapFinder.scanMany call covers a chunk.
 */
export function gapChunks(ids: readonly string[], size: number): string[][] {
  const per = Math.max(1, Math.floor(size));
  const out: string[][] = [];
  for (let i = 0; i < ids.length; i += per) out.push(ids.slice(i, i + per));
  return out;
}
