import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, test } from 'vitest';
import { COMPILED_MAIN, freshCompiledMain, sourceState, STAMP } from '../../bin/compiled.js';

let root: string;
const T0 = new Date('2026-01-01T00:00:00Z');

function file(path: string, at = T0): void {
  mkdirSync(join(root, path, '..'), { recursive: true });
  writeFileSync(join(root, path), '// x\n');
  utimesSync(join(root, path), at, at);
}

/** What `npm run build` leaves: the compiled entry and the stamp of the sources it compiled. */
function build(): void {
  file(COMPILED_MAIN);
  writeFileSync(join(root, STAMP), JSON.stringify(sourceState(root)));
}

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'expeed-compiled-'));
  file('src/a.ts');
  file('src/cli/main.ts');
  file('workers/b.ts');
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

test('a build of the current sources is used', () => {
  build();
  expect(freshCompiledMain(root)).toBe(join(root, COMPILED_MAIN));
});

test('no build, or a build without its stamp or entry: the sources run', () => {
  expect(freshCompiledMain(root)).toBeUndefined();
  file(COMPILED_MAIN);
  expect(freshCompiledMain(root)).toBeUndefined();
  build();
  rmSync(join(root, COMPILED_MAIN));
  expect(freshCompiledMain(root)).toBeUndefined();
});

test('a source edited after the build makes it stale, in src/ or in workers/', () => {
  build();
  file('src/cli/main.ts', new Date(T0.getTime() + 1000));
  expect(freshCompiledMain(root)).toBeUndefined();
  build();
  expect(freshCompiledMain(root)).toBeDefined();
  file('workers/b.ts', new Date(T0.getTime() + 2000));
  expect(freshCompiledMain(root)).toBeUndefined();
});

test('a file added or removed with an old modification time still makes it stale', () => {
  build();
  file('src/new.ts', new Date(T0.getTime() - 86_400_000));
  expect(freshCompiledMain(root)).toBeUndefined();
  build();
  rmSync(join(root, 'src/a.ts'));
  expect(freshCompiledMain(root)).toBeUndefined();
});
