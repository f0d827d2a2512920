import { describe, expect, test } from 'vitest';
import { cronIntervalMs, planStatusSlot, statusCapacity } from '../../src/pull/status-slot.js';

describe('status slot planning', () => {
  test('10k devices at 20 requests/s over 5 minutes: 6,000 a slot in chunks of 100, all polled after ceil(10000 / 6000) = 2 slots', () => {
    const ids = Array.from({ length: 10_000 }, (_, i) => `d-${String(i).padStart(5, '0')}`);
    const cap = statusCapacity(ids.length, 20, 300_000);
    expect(cap).toMatchObject({ perInterval: 6000, slotsPerRound: 2 });
    const polled = new Map<string, number>();
    let cursor: string | undefined;
    for (let k = 0; k < 4; k++) {
      const plan = planStatusSlot({
        deviceIds: ids,
        pushedAt: new Map(),
        slot: k * 300_000,
        intervalMs: 300_000,
        perInterval: cap.perInterval,
        chunkSize: 100,
        cursor,
      });
      expect(plan.chunks).toHaveLength(60);
      expect(plan.chunks.every((c) => c.length === 100)).toBe(true);
      expect(plan.deferred).toBe(4000);
      for (const id of plan.chunks.flat()) polled.set(id, (polled.get(id) ?? 0) + 1);
      cursor = plan.cursor;
      if (k === 1) expect(polled.size).toBe(10_000); // every device once after 2 slots
    }
    // over 4 slots (2 rounds) nobody is polled more than 3 times or fewer than 2
    expect(Math.min(...polled.values())).toBeGreaterThanOrEqual(2);
    expect(Math.max(...polled.values())).toBeLessThanOrEqual(3);
  });

  test('a fleet that fits is polled whole every slot, without a cursor; pushed devices are left out', () => {
    const plan = planStatusSlot({
      deviceIds: ['b', 'a', 'c'],
      pushedAt: new Map([
        ['b', 950],
        ['c', 100],
      ]),
      slot: 1000,
      intervalMs: 300,
      perInterval: 10,
      chunkSize: 2,
    });
    expect(plan).toEqual({ chunks: [['a', 'c']], pushed: 1, deferred: 0, cursor: undefined });
  });

  test('the interval of a cron expression', () => {
    expect(cronIntervalMs('*/5 * * * *', 'Asia/Shanghai')).toBe(300_000);
    expect(cronIntervalMs('17 * * * *', 'Asia/Shanghai')).toBe(3_600_000);
  });
});
