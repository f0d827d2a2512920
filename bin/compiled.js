// Which code `expeed-sync` runs: the compiled JavaScript in dist/ (`npm run build`) when it was
// built from the sources as they are now, the TypeScript sources through tsx otherwise. A stale
// build never runs: the build records the newest modification time and the number of the files
// under src/ and workers/ it compiled, and any later edit, new file or removed file makes it stale.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

export const SOURCE_DIRS = ['src', 'workers'];
export const STAMP = join('dist', 'build-stamp.json');
export const COMPILED_MAIN = join('dist', 'src', 'cli', 'main.js');

/** The newest mtime (ms) and the number of .ts files under the source folders of `root`. */
export function sourceState(root) {
  let newest = 0;
  let files = 0;
  const walk = (dir) => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const path = join(dir, e.name);
      if (e.isDirectory()) walk(path);
      else if (e.name.endsWith('.ts')) {
        files++;
        newest = Math.max(newest, statSync(path).mtimeMs);
      }
    }
  };
  for (const d of SOURCE_DIRS) walk(join(root, d));
  return { newest, files };
}

/** The compiled entry when dist/ holds a build of the current sources, otherwise undefined. */
export function freshCompiledMain(root) {
  let stamp;
  try {
    stamp = JSON.parse(readFileSync(join(root, STAMP), 'utf8'));
    statSync(join(root, COMPILED_MAIN));
  } catch {
    return undefined;
  }
  const now = sourceState(root);
  if (typeof stamp?.newest !== 'number' || now.newest > stamp.newest || now.files !== stamp.files) return undefined;
  return join(root, COMPILED_MAIN);
}
