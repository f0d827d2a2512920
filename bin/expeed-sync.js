#!/usr/bin/env node
// Runs the compiled JavaScript (dist/, made by `npm run build`) when it is a build of the current
// sources, and the TypeScript sources through tsx otherwise (a fresh clone needs no build step; a
// stale build never runs). The compiled path saves tsx's transform work and ~30 MB of memory.
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { freshCompiledMain } from './compiled.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const compiled = freshCompiledMain(root);
let main;
if (compiled) {
  ({ main } = await import(pathToFileURL(compiled).href));
} else {
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import('../src/cli/main.js'));
}
await main(process.argv.slice(2));
