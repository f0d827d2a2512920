/**
 * node-cron reports a slot that is still running when the next one is due (noOverlap) through its
 * own logger, as coloured console text. The scheduler hands it cronLogger(), so those messages are
 * JSON log lines naming the schedule, like everything else the service logs.
 */
import cron from 'node-cron';
import { pino } from 'pino';
import { afterEach, expect, test, vi } from 'vitest';
import { cronLogger } from '../../src/pull/scheduler.js';
import { until } from '../helpers/services.js';

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  return { lines, logger: pino({ level: 'debug' }, { write: (l: string) => void lines.push(JSON.parse(l)) }) };
}

afterEach(() => vi.restoreAllMocks());

test('a slot still running when the next is due: one JSON warning with the schedule, nothing on the console', async () => {
  const { lines, logger } = capture();
  const consoleWarn = vi.spyOn(console, 'warn');
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  const task = cron.schedule('* * * * * *', () => held, { noOverlap: true, logger: cronLogger(logger, 'nightly') });
  try {
    await until(
      'node-cron to report the overlap',
      async () => lines.some((l) => String(l.msg).includes('still running')),
      { timeoutMs: 10_000 },
    );
  } finally {
    release();
    await task.destroy();
  }
  const line = lines.find((l) => String(l.msg).includes('still running'))!;
  expect(line).toMatchObject({ level: 40, schedule: 'nightly', source: 'node-cron' });
  expect(consoleWarn).not.toHaveBeenCalled();
});

test('errors and debug messages keep their level and carry the error text', () => {
  const { lines, logger } = capture();
  const log = cronLogger(logger, 'gaps')!;
  log.error('task failed', new Error('boom'));
  log.debug(new Error('late'));
  log.info('started');
  expect(lines.map((l) => [l.level, l.schedule, l.msg, l.err])).toEqual([
    [50, 'gaps', 'task failed', 'boom'],
    [20, 'gaps', 'late', undefined],
    [30, 'gaps', 'started', undefined],
  ]);
});
