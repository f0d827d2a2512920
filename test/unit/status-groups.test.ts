import { describe, expect, test } from 'vitest';
import { problemGroups } from '../../src/status/problem-groups.js';
import { renderStatus } from '../../src/cli/commands/status.js';
import type { DeviceState, DeviceStatusRow, StatusReport } from '../../src/status/report.js';

const row = (id: string, state: DeviceState): DeviceStatusRow => ({
  id,
  state,
  failedJobs: state === 'failing' ? 1 : 0,
});

function report(devices: DeviceStatusRow[]): StatusReport {
  const summary = { ok: 0, failing: 0, stale: 0, 'never synced': 0 } as Record<DeviceState, number>;
  for (const d of devices) summary[d.state]++;
  const at = Date.UTC(2026, 11, 7, 12);
  return {
    at,
    summary,
    staleAfterMs: 2 * 86_400_000,
    devices,
    queues: { backfill: { waiting: 0 }, status: {}, ingest: {}, rollup: {} },
    token: { day: '2026-12-07', calls: 3, limit: 200, reserve: 20, resetsAt: at + 3_600_000 } as StatusReport['token'],
    deadLetters: 0,
    errors: {},
  };
}

const deviceLines = (text: string) => text.split('\n').filter((l) => /^ {2}d-/.test(l));

describe('status: problem devices grouped by state, capped per group', () => {
  test('groups in the order failing, stale, never synced, each capped, registry order kept', () => {
    const devices = [
      ...Array.from({ length: 25 }, (_, i) => row(`n-${i}`, 'never synced')),
      row('f-0', 'failing'),
      ...Array.from({ length: 3 }, (_, i) => row(`s-${i}`, 'stale')),
      row('ok-0', 'ok'),
    ];
    const groups = problemGroups(devices, 10);
    expect(groups.map((g) => [g.state, g.total, g.shown.length, g.more])).toEqual([
      ['failing', 1, 1, 0],
      ['stale', 3, 3, 0],
      ['never synced', 25, 10, 15],
    ]);
    expect(groups[2]!.shown.map((d) => d.id)).toEqual(Array.from({ length: 10 }, (_, i) => `n-${i}`));
    expect(problemGroups([row('ok-0', 'ok')])).toEqual([]);
    expect(() => problemGroups(devices, -1)).toThrow('group cap must be a whole number >= 0 (got -1)');
  });

  test('600 never-synced devices: one screen (at most 40 lines), the first 10 and "and 590 more"', () => {
    const r = report(Array.from({ length: 600 }, (_, i) => row(`d-${String(i).padStart(4, '0')}`, 'never synced')));
    const text = renderStatus(r, 'Asia/Shanghai', (s) => s);
    const lines = text.split('\n');
    expect(lines.length).toBeLessThanOrEqual(40);
    expect(text).toContain('  with problems (600; --all lists every device):');
    expect(text).toContain('  never synced (600):');
    expect(deviceLines(text).map((l) => l.trim().split(/\s+/)[0])).toEqual(
      Array.from({ length: 10 }, (_, i) => `d-${String(i).padStart(4, '0')}`),
    );
    expect(text).toContain('  and 590 more — `--all`');
    // --all lists every device, uncapped
    expect(deviceLines(renderStatus(r, 'Asia/Shanghai', (s) => s, { all: true }))).toHaveLength(600);
    expect(
      deviceLines(renderStatus(r, 'Asia/Shanghai', (s) => s, { device: 'd-0123' })).map(
        (l) => l.trim().split(/\s+/)[0],
      ),
    ).toEqual(['d-0123']);
  });

  test('a group at or under the cap says no "more"; every group gets its own heading', () => {
    const devices = [...Array.from({ length: 10 }, (_, i) => row(`d-s${i}`, 'stale')), row('d-f', 'failing')];
    const text = renderStatus(report(devices), 'UTC', (s) => s);
    expect(text).not.toContain('more —');
    expect(text.indexOf('  failing (1):')).toBeGreaterThan(-1);
    expect(text.indexOf('  failing (1):')).toBeLessThan(text.indexOf('  stale (10):'));
    expect(deviceLines(text)).toHaveLength(11);
  });
});
