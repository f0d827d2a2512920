/**
 * parsePlatformTime on a history page's worth of rows (6000 rows, one every 10 s), per form the
 * platform may send. Each figure is ns per row and its ratio to Date.parse of the same instants as
 * ISO text, measured in the same run (the machine's load moves both alike).
 */
import { parsePlatformTime } from '../src/platform/timestamp.js';
import { formatPlatformTime } from '../src/platform/time-format.js';

const ROWS = 6000;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 200);
const start = Date.UTC(2024, 0, 1);
const instants = Array.from({ length: ROWS }, (_, i) => start + i * 10_000);
const forms: Record<string, unknown[]> = {
  'vendor (documented)': instants.map((t) => formatPlatformTime(t, 'Asia/Shanghai')),
  'vendor, leading space': instants.map((t) => ` ${formatPlatformTime(t, 'Asia/Shanghai')}`),
  'iso with Z': instants.map((t) => new Date(t).toISOString()),
  'epoch ms (number)': instants,
  'epoch s (string)': instants.map((t) => String(t / 1000)),
};
const iso = instants.map((t) => new Date(t).toISOString());

function time(run: () => number): number {
  let sink = 0;
  for (let i = 0; i < 20; i++) sink += run(); // warm-up
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < ROUNDS; i++) sink += run();
  const ns = Number(process.hrtime.bigint() - t0) / (ROUNDS * ROWS);
  if (sink === 42) console.log('');
  return ns;
}

const baseline = time(() => {
  let s = 0;
  for (const text of iso) s += Date.parse(text);
  return s;
});
console.log(`baseline Date.parse(ISO): ${baseline.toFixed(1)} ns/row`);
for (const [name, values] of Object.entries(forms)) {
  let ns: number;
  try {
    ns = time(() => {
      let s = 0;
      for (const v of values) s += parsePlatformTime(v, 'Asia/Shanghai');
      return s;
    });
  } catch (err) {
    console.log(`${name.padEnd(24)} refused: ${(err as Error).message}`);
    continue;
  }
  console.log(`${name.padEnd(24)} ${ns.toFixed(1).padStart(7)} ns/row  ${(ns / baseline).toFixed(2)}x Date.parse`);
}
