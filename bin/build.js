#!/usr/bin/env node
// `npm run build`: compiles src/ and workers/ (tsconfig.build.json) into dist/ and writes the stamp
// bin/expeed-sync.js checks. The state of the sources is taken *before* compiling, so an edit made
// while tsc runs leaves the build stale. The new build is made in a folder of its own and swapped in
// whole, so a process starting meanwhile sees either the old build or the new one.
// `node bin/build.js --check` only says whether dist/ is up to date (exit 0) or not (exit 1).
import { spawnSync } from 'node:child_process';
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freshCompiledMain, sourceState, STAMP } from './compiled.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
// `--check`: exit 1 unless dist/ is a build of the current sources (the Dockerfile checks its image)
if (process.argv.includes('--check')) {
  const fresh = freshCompiledMain(root) !== undefined;
  process.stderr.write(
    fresh
      ? 'build: dist/ is up to date\n'
      : 'build: dist/ is missing or older than src/ and workers/ (npm run build)\n',
  );
  process.exit(fresh ? 0 : 1);
}
const state = sourceState(root);
const next = join(root, `dist.build-${process.pid}`);
const old = join(root, `dist.old-${process.pid}`);
rmSync(next, { recursive: true, force: true });
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const r = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json'), '--outDir', next], {
  stdio: 'inherit',
});
if (r.status !== 0) {
  rmSync(next, { recursive: true, force: true });
  process.stderr.write('build: tsc failed; dist/ left as it was\n');
  process.exit(r.status ?? 1);
}
writeFileSync(
  join(next, STAMP.slice('dist/'.length)),
  `${JSON.stringify({ ...state, builtAt: new Date().toISOString() })}\n`,
);
const dist = join(root, 'dist');
let hadOld = true;
try {
  renameSync(dist, old);
} catch {
  hadOld = false;
}
renameSync(next, dist);
if (hadOld) rmSync(old, { recursive: true, force: true });
process.stderr.write(`build: ${state.files} source files compiled into dist/\n`);
