/**
 * The devices `expeed-sync status` lists by default: those with a problem, grouped by state (the
 * worst first) and capped per group, so that a fleet of thousands of never-synced or stale devices
 * still fits on one screen. `--all` and `--json` are not capped.
 */
import type { DeviceState, DeviceStatusRow } from './report.js';

/** the problem states, in the order they are listed: what needs an operator first */
export const PROBLEM_STATES: readonly DeviceState[] = ['failing', 'stale', 'never synced'];

/** devices listed per state before the rest are counted only */
export const DEFAULT_GROUP_CAP = 10;

export interface ProblemGroup {
  state: DeviceState;
  /** every device in this state */
  total: number;
  /** the first `cap` of them, in registry order */
  shown: DeviceStatusRow[];
  /** total − shown.length */
  more: number;
}

/** The non-empty problem groups of `devices`, each holding at most `cap` rows. */
export function problemGroups(devices: readonly DeviceStatusRow[], cap = DEFAULT_GROUP_CAP): ProblemGroup[] {
  if (!(Number.isInteger(cap) && cap >= 0)) throw new RangeError(`group cap must be a whole number >= 0 (got ${cap})`);
  const out: ProblemGroup[] = [];
  for (const state of PROBLEM_STATES) {
    const all = devices.filter((d) => d.state === state);
    if (all.length === 0) continue;
    const shown = all.slice(0, cap);
    out.push({ state, total: all.length, shown, more: all.length - shown.length });
  }
  return out;
}
