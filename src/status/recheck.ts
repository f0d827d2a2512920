/**
 * The status lines of history re-checks: the last verification's totals ("last verified …") and the
 * late rows the nightly lookback found per device.
 */
import type { Redis } from 'ioredis';
import { LateRows } from '../pull/lookback.js';
import { VerifyLedger, type LastVerification } from '../pull/verify-run.js';
import { formatLocalTime } from '../platform/time-format.js';

export interface RecheckStatus {
  lastVerification?: LastVerification;
  /** device id -> late rows the lookback wrote */
  lateRows: Record<string, number>;
}

export async function gatherRecheck(
  redis: Pick<Redis, 'hgetall' | 'hset' | 'hincrby' | 'del'>,
  prefix: string,
): Promise<RecheckStatus> {
  const [lastVerification, late] = await Promise.all([
    new VerifyLedger(redis, prefix).last(),
    new LateRows(redis, prefix).all(),
  ]);
  return { lastVerification, lateRows: Object.fromEntries(late) };
}

export function renderRecheck(r: RecheckStatus, timezone: string, device?: string): string {
  const lines: string[] = [];
  const v = r.lastVerification;
  if (v) {
    const unequal = v.missing + v.extra + v.differing;
    lines.push(
      `last verified ${formatLocalTime(v.at, timezone)} (${v.devices} device(s), ${formatLocalTime(v.from, timezone)}..${formatLocalTime(v.to, timezone)}): ${v.equal} hours equal, ${v.repaired} repaired${unequal ? `, ${unequal} not equal (missing ${v.missing}, extra ${v.extra}, differing ${v.differing})` : ''}`,
    );
  } else lines.push('last verified: never (expeed-sync verify, or EXPEED_SCHEDULE_VERIFY)');
  const late = Object.entries(r.lateRows).filter(([id]) => device === undefined || id === device);
  if (late.length) lines.push(`late rows found by the lookback: ${late.map(([id, n]) => `${id} ${n}`).join(', ')}`);
  return lines.join('\n');
}
