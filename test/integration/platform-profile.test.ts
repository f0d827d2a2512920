/**
 * What the history walks learn about the platform (src/platform/platform-profile.ts), through the
 * CLI as users run it: after a backfill against a platform that serves newest first whatever
 * `first` asks and caps pages below `limit`, `status` (and `status --json`) says so; a later
 * backfill, in another process, starts with the learned cap from its first request.
 */
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { startSimulator } from '../../src/simulator/index.js';
import { runCli } from '../helpers/cli.js';
import { createTestDatabase, deleteRedisPrefix, INFLUX_URL, randomName, testPrefix } from '../helpers/services.js';
import {
  expectedTotals,
  influxTotals,
  numericFields,
  PLATFORM_KEY,
  SECRET_KEY,
  testEnv,
} from '../fixtures/pull-env.js';

const HOUR = 3_600_000;
// platform midnight (Asia/Shanghai): windows of one day start here
const FROM = Date.UTC(2026, 3, 1, 16);
const CAP = 3;

describe('the learned platform', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterAll(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  });

  test('a capped newest-first platform is shown by status; the next backfill uses the cap from its first request', async () => {
    const sim = await startSimulator({
      platformKey: PLATFORM_KEY,
      secretKey: SECRET_KEY,
      devices: [{ id: 'prof-a', key: 'key-prof-a', cadenceSec: 60 }],
      from: FROM - HOUR,
      to: FROM + 30 * HOUR,
      seed: 5,
      history: { order: 'newest-first', pageCap: CAP },
      sameMsRate: 0.05,
    });
    cleanups.push(() => sim.close());
    const db = await createTestDatabase('profile');
    cleanups.push(() => db.drop());
    const prefix = testPrefix('profile');
    cleanups.push(() => deleteRedisPrefix(prefix));
    const devicesFile = join(tmpdir(), `${randomName('profile')}.json`);
    writeFileSync(devicesFile, JSON.stringify([{ id: 'prof-a', key: 'key-prof-a' }]));
    const env = testEnv({
      simUrl: sim.url,
      prefix,
      db: db.name,
      influxUrl: INFLUX_URL,
      env: { EXPEED_DEVICES_FILE: devicesFile, LOG_LEVEL: 'warn' },
    });
    const backfill = (from: number, to: number) =>
      runCli(
        ['backfill', '--all', '--from', new Date(from).toISOString(), '--to', new Date(to).toISOString(), '--wait'],
        env,
        { timeoutMs: 90_000 },
      );
    // milliseconds holding as many rows as a page (CAP): a walk cannot tell whether more share them
    const perMs = new Map<number, number>();
    for (const r of sim.rows('prof-a', FROM, FROM + 30 * HOUR)) perMs.set(r.time, (perMs.get(r.time) ?? 0) + 1);
    const full = [...perMs].filter(([, n]) => n >= CAP).map(([t]) => t);
    const at = full.findIndex((t, i) => i > 0 && t - full[i - 1] > 70 * 60_000);
    expect(at).toBeGreaterThan(0);
    // the first backfill: an hour without such a millisecond, walked in pages of CAP rows
    const first = { from: full[at - 1] + 1, to: full[at - 1] + 1 + HOUR };
    const one = await backfill(first.from, first.to);
    expect(one.code, one.stderr).toBe(0);
    const expected = expectedTotals(sim, 'prof-a', first.from, first.to);
    expect(
      await influxTotals(
        db.name,
        INFLUX_URL,
        'prof-a',
        Object.keys(expected),
        numericFields(sim, 'prof-a', first.from, first.to),
      ),
    ).toEqual(expected);

    const status = await runCli(['status'], env);
    expect(status.stdout).toMatch(
      new RegExp(
        `^platform: pages newest first, at most ${CAP} rows per page \\(learned 2\\d{3}-\\d\\d-\\d\\d.*\\)$`,
        'm',
      ),
    );
    const json = JSON.parse((await runCli(['status', '--json'], env)).stdout);
    expect(json.platform).toEqual({
      order: 'newest-first',
      pageCap: CAP,
      largestPage: CAP,
      learnedAt: expect.any(Number),
    });

    // the next backfill, another process, ends at such a millisecond: its first answer is CAP rows
    // of one millisecond. Knowing the cap from that first request, the walk reads the second answer
    // (the same rows) as maybe cut short and fails loudly, after 2 requests, instead of ending there
    const before = sim.stats.requests.history ?? 0;
    const two = await backfill(full[at] - 10 * 60_000, full[at] + 1);
    expect(two.code).not.toBe(0);
    expect(two.stderr).toMatch(
      new RegExp(
        `device prof-a window .*: history walk cannot make progress: .*pages capped at ${CAP}.*more rows share that time than one page holds`,
      ),
    );
    expect((sim.stats.requests.history ?? 0) - before).toBe(2);
    expect(sim.stats.tokenCalls).toBe(1);
  }, 150_000);
});
