import { afterEach, beforeEach, expect, test, vi } from 'vitest';
import { repeat } from '../../src/base/repeat.js';

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

test('one round at a time: ticks while a round runs are skipped; stop() waits for the round under way', async () => {
  let rounds = 0;
  let release!: () => void;
  const r = repeat(
    () => {
      rounds++;
      return new Promise<void>((done) => (release = done));
    },
    { everyMs: 100, onError: () => undefined },
  );
  expect(rounds).toBe(0); // not immediately
  await vi.advanceTimersByTimeAsync(100);
  expect(rounds).toBe(1);
  await vi.advanceTimersByTimeAsync(500); // five ticks while the first round is held
  expect(rounds).toBe(1);
  release();
  await vi.advanceTimersByTimeAsync(100);
  expect(rounds).toBe(2);
  let stopped = false;
  const stopping = r.stop().then(() => (stopped = true));
  await vi.advanceTimersByTimeAsync(0);
  expect(stopped).toBe(false); // round 2 is still held
  release();
  await stopping;
  await vi.advanceTimersByTimeAsync(1000);
  expect(rounds).toBe(2); // no round after stop()
});

test('a failed round goes to onError and the next tick runs again; immediately runs the first round at once', async () => {
  const errors: unknown[] = [];
  let rounds = 0;
  const r = repeat(
    async () => {
      rounds++;
      if (rounds === 1) throw new Error('boom');
    },
    { everyMs: 100, onError: (err) => errors.push((err as Error).message), immediately: true },
  );
  expect(rounds).toBe(1);
  await vi.advanceTimersByTimeAsync(100);
  expect(errors).toEqual(['boom']);
  expect(rounds).toBe(2);
  await r.stop();
});
