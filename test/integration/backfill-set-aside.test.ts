/**
 * `expeed-sync backfill --all --wait` when the platform serves rows that cannot be written as
 * they are (a lone UTF-16 surrogate in a value, a timestamp that names no time): exit 0 means every
 * row the platform served is in InfluxDB, so a backfill that set rows aside exits 3, and says per
 * device how many and why; the rows are dead letters with their raw content; the device is failing
 * in `status`; the readable rows landed exactly.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { Simulator } from '../../src/simulator/index.js';
import { runCli } from '../helpers/cli.js';
import { influxRows } from '../helpers/services.js';
import { PLATFORM_KEY, SECRET_KEY, startCliEnv, type CliEnv } from '../fixtures/pull-env.js';

const HOUR = 3_600_000;
const FROM = Date.UTC(2026, 4, 1);
const TO = FROM + 12 * HOUR;
let cli: CliEnv;
let sim: Simulator;

beforeAll(async () => {
  cli = await startCliEnv('setaside', {
    platformKey: PLATFORM_KEY,
    secretKey: SECRET_KEY,
    devices: [
      { id: 'aside-1', key: 'key-a1', cadenceSec: 600, fields: ['temp'] },
      { id: 'aside-2', key: 'key-a2', cadenceSec: 600, fields: ['temp'] },
    ],
    from: FROM,
    to: TO,
  });
  sim = cli.sim;
  // two rows of aside-1 the client cannot write as they are: a lone surrogate in a string value
  const bad = JSON.parse('{"note":"x\\ud800y"}') as Record<string, unknown>;
  sim.addRows('aside-1', [
    { time: FROM + HOUR + 1, values: bad },
    { time: FROM + 2 * HOUR + 1, values: bad },
  ]);
});

afterAll(async () => cli?.close());

test('rows set aside: exit 3, how many and why per device, dead letters kept, the device failing, the rest exact', async () => {
  const range = ['--from', new Date(FROM).toISOString(), '--to', new Date(TO).toISOString()];
  const res = await runCli(['backfill', '--all', '--wait', ...range], cli.env);
  expect(res.code, res.stderr + res.stdout).toBe(3);
  const out = res.stdout + res.stderr;
  expect(out).toContain('2 row(s) of 1 device(s) set aside as dead letters');
  expect(out).toMatch(/device aside-1: 2 row\(s\) set aside as dead letters .*not well-formed Unicode/);
  expect(out).not.toMatch(/aside-2.*set aside/);

  // every readable row landed: the platform's temp rows of both devices, exactly
  for (const id of ['aside-1', 'aside-2']) {
    const want = sim.rows(id, FROM, TO).filter((r) => typeof r.values.temp === 'number');
    const [got] = await influxRows(
      cli.db,
      `SELECT count("temp") AS n, sum("temp") AS s FROM device_data WHERE device_id = '${id}'`,
    );
    expect(got?.n).toBe(want.length);
    expect(got?.s).toBeCloseTo(
      want.reduce((n, r) => n + Number(r.values.temp), 0),
      6,
    );
  }

  const letters = await runCli(['dead-letters', 'list', '--json'], cli.env);
  const parsed = JSON.parse(letters.stdout) as {
    total: number;
    letters: Array<{ kind: string; deviceId: string; reason: string }>;
  };
  expect(parsed.total).toBe(2);
  expect(
    parsed.letters.every(
      (l) => l.kind === 'row' && l.deviceId === 'aside-1' && l.reason.includes('not well-formed Unicode'),
    ),
  ).toBe(true);

  const status = await runCli(['status', '--json', '--all'], cli.env);
  const devices = (JSON.parse(status.stdout) as { devices: Array<{ id: string; state: string }> }).devices;
  // aside-2 is not failing: stale only because its checkpoint is the range's end, months ago
  expect(Object.fromEntries(devices.map((d) => [d.id, d.state]))).toEqual({ 'aside-1': 'failing', 'aside-2': 'stale' });
});
