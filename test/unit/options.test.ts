import { describe, expect, test } from 'vitest';
import { withDefaults } from '../../src/base/options.js';
import { DEFAULT_ROLLUP_DISPATCHER, RollupDispatcher } from '../../src/rollup/dispatcher.js';

describe('withDefaults: each default stated once, an undefined value keeps it', () => {
  test('values given win, undefined ones keep the default, the defaults object is not changed', () => {
    const defaults = { everyMs: 1000, limit: 5, name: 'x' };
    const got = withDefaults(defaults, { everyMs: undefined, limit: 7, extra: true });
    expect(got).toEqual({ everyMs: 1000, limit: 7, name: 'x', extra: true });
    expect(defaults).toEqual({ everyMs: 1000, limit: 5, name: 'x' });
    expect(withDefaults(defaults, undefined)).toEqual(defaults);
    // null and 0 are values, not "not given"
    expect(withDefaults({ a: 1, b: 2 }, { a: 0, b: null })).toEqual({ a: 0, b: null });
  });

  test('a component given an explicit undefined option runs on its default', async () => {
    const asked: number[] = [];
    const dirty = { settled: async (_settle: number, limit: number) => (asked.push(limit), []) };
    const d = new RollupDispatcher({
      dirty,
      queue: { add: async () => undefined as never },
      settleMs: 0,
      logger: undefined as never,
      scanLimit: undefined,
    });
    await d.tick();
    expect(asked).toEqual([DEFAULT_ROLLUP_DISPATCHER.scanLimit]);
  });
});
