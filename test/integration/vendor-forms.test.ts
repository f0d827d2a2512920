/**
 * `expeed-sync backfill --all --wait`, as users run it, against platforms that send what the
 * vendor document does not (docs/platform-api.md §2.3, §3): every timestamp form (epoch numbers,
 * numeric strings, ISO 8601), each combined with another reading of the paging, on a dense device
 * (many pages a window) and a sparse one (a window in one page); HTTP 429 with `Retry-After: 1`
 * (each throttled answer pauses the platform calls for the header's second); and pages in no
 * order, which no walk can make exact (the backfill fails naming device, window and reason).
 */
import { afterAll, describe, expect, test } from 'vitest';
import { startSimulator, type HistoryReading, type TimestampForm } from '../../src/simulator/index.js';
import { runCli } from '../helpers/cli.js';
import { PLATFORM_KEY, SECRET_KEY, startCliEnv, totalsDifferences } from '../fixtures/pull-env.js';

const HOUR = 3_600_000;
const FROM = Date.UTC(2026, 3, 1);
const TO = FROM + 36 * HOUR;
const RANGE = ['--from', new Date(FROM).toISOString(), '--to', new Date(TO).toISOString()];

interface FormCombo {
  form: TimestampForm;
  history: Partial<HistoryReading>;
  sameMsRepeat?: boolean;
}

// every form but the documented one (vendor-readings.test runs that), each with another reading
const FORMS: FormCombo[] = [
  { form: 'epoch-ms', history: { cursor: 'next', order: 'newest-first', end: 'inclusive' } },
  { form: 'epoch-s', history: { cursor: 'next', pageCap: 23 } },
  { form: 'epoch-ms-string', history: { cursor: 'last-exclusive', limit: 'datapoints', start: 'exclusive' } },
  { form: 'iso-z', history: { cursor: 'first-row', start: 'exclusive', end: 'inclusive' } },
  { form: 'iso-offset', history: { cursor: 'none', order: 'inverted', pageCap: 17 } },
  { form: 'iso-local', history: { cursor: 'last-inclusive', limit: 'datapoints' }, sameMsRepeat: true },
];

/** A dense device (about 10 pages a window) and a sparse one (a window fits in one page). */
const devicesOf = (name: string) => [
  { id: `${name}-dense`, key: `key-${name}-dense`, cadenceSec: 90 },
  { id: `${name}-sparse`, key: `key-${name}-sparse`, cadenceSec: 3600, fields: ['temp', 'switch'] },
];

describe('backfill --all --wait: timestamp forms, throttling, pages in no order', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterAll(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  });

  async function setUp(_name: string, options: Parameters<typeof startSimulator>[0], env: Record<string, string>) {
    const cli = await startCliEnv('form', options, { EXPEED_PAGE_LIMIT: '100', EXPEED_BACKFILL_WINDOW: '1d', ...env });
    cleanups.push(() => cli.close());
    return cli;
  }

  async function runForm(c: FormCombo) {
    const { sim, db, env } = await setUp(
      c.form,
      {
        platformKey: PLATFORM_KEY,
        secretKey: SECRET_KEY,
        devices: devicesOf(c.form),
        from: FROM - 2 * HOUR,
        to: TO + 2 * HOUR,
        seed: 18,
        timestampForm: c.form,
        history: c.history,
        sameMsRate: 0.1,
        sameMsRepeat: c.sameMsRepeat,
        deviceFailRate: 0.05,
      },
      { WORKER_CONCURRENCY: '4', LOG_LEVEL: 'warn' },
    );
    // rows at the window boundaries (platform midnight, 16:00Z) and at --from/--to
    for (const d of sim.devices)
      sim.addRows(
        d.id,
        [FROM, FROM + 16 * HOUR, TO - 1, TO].map((time, i) => ({ time, values: { temp: 40 + i } })),
      );
    const run = await runCli(['backfill', '--all', ...RANGE, '--wait'], env, { timeoutMs: 120_000 });
    return { c, sim, db, run };
  }

  test('every timestamp form lands exactly, on a dense and a sparse device, with one token call', async () => {
    const results = await Promise.all(FORMS.map(runForm));
    const problems: string[] = [];
    for (const { c, sim, db, run } of results) {
      if (run.code !== 0)
        problems.push(`${c.form}: exit ${run.code}: ${run.stdout.slice(-300)} ${run.stderr.slice(0, 300)}`);
      for (const d of devicesOf(c.form)) problems.push(...(await totalsDifferences(c.form, sim, db, d.id, FROM, TO)));
      if (sim.stats.tokenCalls !== 1) problems.push(`${c.form}: ${sim.stats.tokenCalls} token calls`);
      if (sim.stats.violations.length) problems.push(`${c.form}: violations ${sim.stats.violations.join('; ')}`);
      // the sparse device's windows each fit in one page; the dense device's take several
      const sparse = sim.rows(`${c.form}-sparse`, FROM, TO).length;
      if (!(sparse > 20 && sparse < 50)) problems.push(`${c.form}: the sparse device holds ${sparse} rows`);
      if (sim.rows(`${c.form}-dense`, FROM, TO).length < 1400)
        problems.push(`${c.form}: the dense device holds too few rows`);
    }
    expect(problems).toEqual([]);
  }, 150_000);

  test("HTTP 429 with Retry-After: 1 lands exactly, and every throttled answer pauses the platform calls for the header's second", async () => {
    const devices = [{ id: 'throttled-1', key: 'key-throttled', cadenceSec: 90 }];
    // one window at a time: each throttled answer comes after the pause before it ended, so each begins a pause of its own
    const { sim, db, env } = await setUp(
      'throttled',
      { platformKey: PLATFORM_KEY, secretKey: SECRET_KEY, devices, from: FROM - 2 * HOUR, to: TO + 2 * HOUR, seed: 7 },
      { WORKER_CONCURRENCY: '1', LOG_LEVEL: 'warn' },
    );
    sim.faults.throttleRate = 0.3;
    const run = await runCli(['backfill', '--all', ...RANGE, '--wait'], env, { timeoutMs: 120_000 });
    expect(run.code, run.stderr.slice(0, 500)).toBe(0);
    expect(await totalsDifferences('throttled', sim, db, 'throttled-1', FROM, TO)).toEqual([]);
    expect(sim.stats.tokenCalls).toBe(1);
    const served = sim.faults.throttledServed;
    expect(served).toBeGreaterThanOrEqual(5);
    const pauses = run.stderr
      .split('\n')
      .filter((l) => l.includes('the platform asked to wait'))
      .map(
        (l) => JSON.parse(l) as { msg: string; status: number; retryAfter: string; pauseMs: number; capped?: boolean },
      );
    // one pause per throttled answer, each as long as the header asked: 1 s, not our own backoff
    expect(pauses).toHaveLength(served);
    for (const p of pauses) {
      expect([p.status, p.retryAfter, p.pauseMs, p.capped]).toEqual([429, '1', 1000, undefined]);
      expect(p.msg).toBe("the platform asked to wait (HTTP 429); every process's platform calls pause for 1 s");
    }
  }, 130_000);

  test('rows in no order: the backfill exits non-zero naming the device, the window and the reason', async () => {
    const devices = [{ id: 'shuffled-1', key: 'key-shuffled', cadenceSec: 60 }];
    const { sim, env } = await setUp(
      'shuffled',
      {
        platformKey: PLATFORM_KEY,
        secretKey: SECRET_KEY,
        devices,
        from: FROM,
        to: TO,
        seed: 5,
        history: { order: 'unordered' },
      },
      { WORKER_CONCURRENCY: '2', LOG_LEVEL: 'warn' },
    );
    const run = await runCli(
      [
        'backfill',
        '--all',
        '--from',
        new Date(FROM).toISOString(),
        '--to',
        new Date(FROM + 6 * HOUR).toISOString(),
        '--wait',
      ],
      env,
      { timeoutMs: 60_000 },
    );
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(
      /device shuffled-1 window 2026-0[34]-\d\dT\d\d:00:00\.000Z\.\.2026-04-01T06:00:00\.000Z: history walk cannot make progress: a page from \S+ is in no time order \(row \d+ \(\S+\) follows row \d+/,
    );
    // the window failed at once: not retried page after page
    expect(sim.stats.requests.history ?? 0).toBeLessThan(10);
  }, 70_000);
});
