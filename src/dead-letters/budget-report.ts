/**
 * The dead-letter budget as operators see it: one line for `status`, one readiness check for
 * /readyz (degraded, not failed: pushes and pulls go on, only refused content is not kept).
 */
import type { Degraded, ReadinessCheck } from '../ops/ops-routes.js';
import type { DeadLetterBudget, RedisDeadLetterStore } from './store.js';

const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

/** e.g. `3.2 MiB of 256.0 MiB` or `... FULL since 2026-12-02T01:00:00.000Z: 12 not kept (push/webhook 12)` */
export function describeBudget(b: DeadLetterBudget): string {
  const used = `${mib(b.usedBytes)} of ${mib(b.maxBytes)} (EXPEED_DEAD_LETTER_MAX_BYTES)`;
  if (b.fullSince === undefined) return used;
  const counts = Object.entries(b.notKept);
  const total = counts.reduce((n, [, c]) => n + c, 0);
  return `${used}, FULL since ${new Date(b.fullSince).toISOString()}: ${total} not kept (${counts.map(([k, c]) => `${k} ${c}`).join(', ')}); drop or retry dead letters`;
}

export function budgetCheck(store: Pick<RedisDeadLetterStore, 'budget'>): ReadinessCheck {
  return {
    name: 'dead-letters',
    check: async (): Promise<true | Degraded> => {
      const b = await store.budget();
      return b.fullSince === undefined ? true : { degraded: describeBudget(b) };
    },
  };
}
