import type { DeviceProgress, ProgressSnapshot } from './progress.js';

/** Renders backfill progress: bars on a terminal, plain lines elsewhere. Pure: text in, text out. */

export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '--';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

function formatCount(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e4) return `${(n / 1e3).toFixed(0)}k`;
  return String(Math.round(n));
}

function fraction(p: DeviceProgress): number {
  if (p.windows > 0 && p.completed + p.failed === p.windows) return 1;
  return p.span > 0 ? Math.min(1, p.covered / p.span) : 0;
}

/** Points per second and the time left, from how much of the time range is covered so far. */
export function rateAndEta(p: DeviceProgress, elapsedMs: number): { rate: number; etaMs: number } {
  const f = fraction(p);
  const rate = elapsedMs > 0 ? (p.points * 1000) / elapsedMs : 0;
  const etaMs = f >= 1 ? 0 : f > 0 ? (elapsedMs * (1 - f)) / f : Number.NaN;
  return { rate, etaMs };
}

function stats(p: DeviceProgress, elapsedMs: number): string {
  const { rate, etaMs } = rateAndEta(p, elapsedMs);
  const failed = p.failed ? `, ${p.failed} failed` : '';
  return `${p.completed}/${p.windows} windows${failed}, ${formatCount(p.points)} points, ${p.pages} pages, ${formatCount(rate)} pts/s, ETA ${formatDuration(etaMs)}`;
}

export function bar(f: number, width: number): string {
  const filled = Math.round(Math.max(0, Math.min(1, f)) * width);
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${String(Math.floor(f * 100)).padStart(3)}%`;
}

/** One plain line (logs, pipes): the overall state. */
export function plainLine(s: ProgressSnapshot, elapsedMs: number): string {
  const devicesDone = s.devices.filter((d) => d.completed + d.failed === d.windows).length;
  return `backfill: ${devicesDone}/${s.devices.length} devices done, ${stats(s.total, elapsedMs)}`;
}

/** Terminal lines: one bar overall, and one per device when there are few enough to read. */
export function terminalLines(
  s: ProgressSnapshot,
  elapsedMs: number,
  options: { width: number; maxDevices: number },
): string[] {
  const barWidth = Math.max(10, Math.min(40, options.width - 90));
  const lines = [`${'all'.padEnd(16)} ${bar(fraction(s.total), barWidth)} ${stats(s.total, elapsedMs)}`];
  if (s.devices.length > 1 && s.devices.length <= options.maxDevices) {
    for (const d of s.devices) {
      const name = d.deviceId.length > 16 ? `${d.deviceId.slice(0, 15)}…` : d.deviceId.padEnd(16);
      lines.push(`${name} ${bar(fraction(d), barWidth)} ${stats(d, elapsedMs)}`);
    }
  }
  return lines.map((l) => (l.length > options.width ? l.slice(0, options.width - 1) : l));
}
