/** A round of work repeated on a timer until stop(). */
export interface Repeating {
  /** Stops the timer and waits for a round under way. */
  stop(): Promise<void>;
}

export interface RepeatOptions {
  everyMs: number;
  /** a failed round; the next tick tries again */
  onError: (err: unknown) => void;
  /** run the first round at once instead of after `everyMs` (default false) */
  immediately?: boolean;
  /** the timer does not keep the process alive (default false) */
  unref?: boolean;
}

/**
 * Runs `round` every `everyMs` ms, one round at a time: a tick while a round still runs is skipped,
 * so a slow round is never overtaken by the next one nor queued behind it.
 */
export function repeat(round: () => Promise<unknown>, options: RepeatOptions): Repeating {
  let running: Promise<void> | undefined;
  const tick = (): void => {
    if (running) return;
    running = round()
      .then(() => undefined, options.onError)
      .finally(() => (running = undefined));
  };
  if (options.immediately) tick();
  const timer = setInterval(tick, options.everyMs);
  if (options.unref) timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
