import { describe, expect, test } from 'vitest';
import { renderStatus } from '../../src/cli/commands/status.js';
import type { StatusReport } from '../../src/status/report.js';

const base: StatusReport = {
  at: Date.UTC(2026, 11, 2),
  summary: { ok: 0, failing: 0, stale: 0, 'never synced': 0 },
  staleAfterMs: 2 * 86_400_000,
  devices: [],
  queues: {},
  deadLetters: 3,
  errors: {},
};

describe('status: the dead-letter budget line', () => {
  test('shows what is used of the budget', () => {
    const out = renderStatus(
      { ...base, deadLetterBudget: { usedBytes: 3 * 1024 * 1024, maxBytes: 256 * 1024 * 1024, notKept: {} } },
      'Asia/Shanghai',
      (s) => s,
    );
    expect(out).toContain(
      'DEAD LETTERS  3  (expeed-sync dead-letters list)\n  budget: 3.0 MiB of 256.0 MiB (EXPEED_DEAD_LETTER_MAX_BYTES)',
    );
  });

  test('says FULL, since when and what was not kept', () => {
    const budget = {
      usedBytes: 256 * 1024 * 1024,
      maxBytes: 256 * 1024 * 1024,
      fullSince: Date.UTC(2026, 11, 1, 23, 0),
      notKept: { 'push/webhook': 40, 'point/pull': 2 },
    };
    const out = renderStatus({ ...base, deadLetterBudget: budget }, 'Asia/Shanghai', (s) => s);
    expect(out).toContain(
      'budget: 256.0 MiB of 256.0 MiB (EXPEED_DEAD_LETTER_MAX_BYTES), FULL since 2026-12-01T23:00:00.000Z: 42 not kept (push/webhook 40, point/pull 2); drop or retry dead letters',
    );
  });
});
