/**
 * Pure gap logic: a device's cadence from its own data, holes in bucketed counts, and the
 * subtraction of the times the device was known to be offline.
 */
import type { Window } from './windows.js';

export interface GapRules {
  /** a hole is a gap when it is longer than this many times the device's median interval (default 10) */
  cadenceFactor: number;
  /** and longer than this, ms (default 10 minutes): jitter of a fast device is not a gap */
  minGapMs: number;
  /** intervals needed before a cadence is trusted (default 20) */
  minSamples: number;
  /** how many of the device's newest points the cadence is measured on (default 500) */
  cadenceSampleSize: number;
}

export const DEFAULT_GAP_RULES: GapRules = {
  cadenceFactor: 10,
  minGapMs: 10 * 60_000,
  minSamples: 20,
  cadenceSampleSize: 500,
};

/** Median interval between distinct times, or undefined with fewer than `minSamples` intervals. */
export function estimateCadence(times: number[], minSamples: number): number | undefined {
  const sorted = [...new Set(times)].sort((a, b) => a - b);
  const deltas: number[] = [];
  for (let i = 1; i < sorted.length; i++) deltas.push(sorted[i] - sorted[i - 1]);
  if (deltas.length < minSamples) return undefined;
  deltas.sort((a, b) => a - b);
  const mid = Math.floor(deltas.length / 2);
  return deltas.length % 2 ? deltas[mid] : Math.round((deltas[mid - 1] + deltas[mid]) / 2);
}

/** The shortest hole reported as a gap, and the bucket width that resolves it (whole seconds). */
export function gapThreshold(
  cadenceMs: number,
  rules: Pick<GapRules, 'cadenceFactor' | 'minGapMs'>,
): { thresholdMs: number; bucketMs: number } {
  const thresholdMs = Math.max(rules.cadenceFactor * cadenceMs, rules.minGapMs);
  const bucketMs = Math.max(1000, Math.floor(thresholdMs / 4 / 1000) * 1000);
  return { thresholdMs, bucketMs };
}

export interface BucketCount {
  /** bucket start, epoch ms */
  time: number;
  count: number;
}

/**
 * Holes of at least `thresholdMs` between non-empty buckets in [from, to). A hole at the start of
 * the range counts only when the device had data before it (`dataBefore`); a hole up to `to`
 * counts when the device had data in the range or before. Each gap is widened by one bucket on
 * either side: the buckets around it may be missing part of their data too.
 */
export function findHoles(
  buckets: BucketCount[],
  options: { from: number; to: number; bucketMs: number; thresholdMs: number; dataBefore: boolean },
): Window[] {
  const { from, to, bucketMs, thresholdMs } = options;
  const sorted = buckets
    .filter((b) => b.count > 0 && b.time < to && b.time + bucketMs > from)
    .sort((a, b) => a.time - b.time);
  const out: Window[] = [];
  let lastEnd: number | undefined = options.dataBefore ? from : undefined;
  const push = (start: number, end: number) => {
    if (end - start >= thresholdMs)
      out.push({ from: Math.max(from, start - bucketMs), to: Math.min(to, end + bucketMs) });
  };
  for (const b of sorted) {
    const start = Math.max(b.time, from);
    if (lastEnd !== undefined) push(lastEnd, start);
    lastEnd = Math.min(b.time + bucketMs, to);
  }
  if (lastEnd !== undefined) push(lastEnd, to);
  return out;
}

/** Offline windows from status points: offline from an `online: false` until the next `online: true`. */
export function offlineWindows(
  statuses: Array<{ time: number; online: boolean }>,
  from: number,
  to: number,
  onlineBefore?: boolean,
): Window[] {
  const out: Window[] = [];
  let offSince: number | undefined = onlineBefore === false ? from : undefined;
  for (const s of [...statuses].sort((a, b) => a.time - b.time)) {
    if (!s.online && offSince === undefined) offSince = Math.max(from, s.time);
    if (s.online && offSince !== undefined) {
      if (s.time > offSince) out.push({ from: offSince, to: Math.min(s.time, to) });
      offSince = undefined;
    }
  }
  if (offSince !== undefined && offSince < to) out.push({ from: offSince, to });
  return out;
}

/** `gaps` minus `offline`; what remains is kept only where it is still at least `thresholdMs` long. */
export function subtractWindows(gaps: Window[], offline: Window[], thresholdMs: number): Window[] {
  const off = [...offline].sort((a, b) => a.from - b.from);
  const out: Window[] = [];
  for (const g of gaps) {
    let pieces: Window[] = [g];
    for (const o of off) {
      pieces = pieces.flatMap((p) => {
        if (o.to <= p.from || o.from >= p.to) return [p];
        const rest: Window[] = [];
        if (o.from > p.from) rest.push({ from: p.from, to: o.from });
        if (o.to < p.to) rest.push({ from: o.to, to: p.to });
        return rest;
      });
    }
    out.push(...pieces.filter((p) => p.to - p.from >= thresholdMs));
  }
  return out;
}
