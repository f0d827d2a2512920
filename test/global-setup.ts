/**
 * vitest globalSetup: builds dist/ once per run, before any test file starts, when it is not a build
 * of the current sources. bin/expeed-sync.js then runs the compiled JavaScript in every test that
 * spawns the CLI or the service (test/helpers/cli.ts, the fixtures), instead of each child loading
 * the TypeScript sources through tsx (seconds of start-up per spawn on a loaded machine). It runs in
 * vitest's main process, once, so files running in parallel never build at the same time; the build
 * swaps the new dist/ in whole (bin/build.js), so a process started by another run meanwhile sees
 * the old build or the new one. A failing build fails the run with tsc's messages.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { freshCompiledMain } from '../bin/compiled.js';

const root = fileURLToPath(new URL('..', import.meta.url));

export default function setup(): void {
  if (freshCompiledMain(root)) return;
  const r = spawnSync(process.execPath, ['bin/build.js'], { cwd: root, encoding: 'utf8' });
  if (r.status !== 0)
    throw new Error(
      `globalSetup: \`node bin/build.js\` failed (exit ${r.status}), so the CLI tests would run the sources through tsx:\n${r.stdout}${r.stderr}`,
    );
  if (!freshCompiledMain(root))
    throw new Error(
      'globalSetup: dist/ is still not a build of the current sources after `node bin/build.js` (a source file changed while it compiled?)',
    );
}
