// The layer rules of docs/architecture.md, checked on the tree as it is: every import of src/ and
// workers/ (static, type-only, `export ... from`, `import()`, `import('x').T`) points down, flows
// never import each other, neither folders nor the files inside one form a cycle, only the composition root constructs the writer
// and the platform client, no file is over 300 lines and no function over 80. Each failure names the file, the line and
// the rule. The first block checks the rule functions themselves on made-up edges, so this test is
// known to be able to fail; the last checks that README.md and docs/architecture.md name only paths
// that exist and list the folders the rules know.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { functionLengths } from '../helpers/function-lengths.js';
import {
  LAYERS,
  REPO_ROOT,
  constructionsOf,
  folderCycles,
  importsOf,
  lineCount,
  readText,
  ruleBroken,
  sourceFiles,
  unitOf,
  type Import,
} from '../helpers/import-graph.js';

const MAX_LINES = 300;
const MAX_FUNCTION_LINES = 80;
const COMPOSITION_ROOT = 'src/app';
const BUILT_ONLY_BY_THE_ROOT = ['InfluxPointWriter', 'ExpeedClient'];

const files = sourceFiles(REPO_ROOT, ['src', 'workers']);
const texts = new Map(files.map((f) => [f, readText(REPO_ROOT, f)]));
const imports: Import[] = files.flatMap((f) => importsOf(REPO_ROOT, f, texts.get(f)!));

describe('the rules themselves', () => {
  test.each([
    ['src/settings/send-setting.ts', 'src/push/ingest.ts', /a flow never imports another flow/],
    ['src/push/ingest.ts', 'src/settings/pending-store.ts', /a flow never imports another flow/],
    ['src/pull/runner.ts', 'src/app/service.ts', /L2 flows imports L5 app/],
    ['src/app/service.ts', 'src/cli/context.ts', /L5 app imports L6 cli/],
    ['src/rollup/rollup-stack.ts', 'workers/rollup.ts', /L2 flows imports L4 workers/],
    ['src/base/config.ts', 'src/platform/timestamp.ts', /L0 base imports L1 foundation/],
    ['src/influx/point-writer.ts', 'src/pull/checkpoints.ts', /L1 foundation imports L2 flows/],
    ['src/status/report.ts', 'workers/status.ts', /L3 views imports L4 workers/],
    ['workers/ingest.ts', 'src/app/service.ts', /L4 workers imports L5 app/],
    ['src/app/service.ts', 'src/simulator/index.ts', /only src\/cli/],
    ['src/simulator/server.ts', 'src/platform/timestamp.ts', /the simulator imports only itself and src\/base/],
    ['src/helpers.ts', 'src/base/log.ts', /is in no layer/],
    ['src/push/server.ts', 'src/newthing/x.ts', /is in no layer/],
  ])('%s -> %s is refused', (from, to, why) => {
    expect(ruleBroken(from, to)).toMatch(why);
  });

  test.each([
    ['src/cli/commands/run.ts', 'src/app/service.ts'],
    ['src/cli/commands/simulate.ts', 'src/simulator/index.ts'],
    ['src/cli/main.ts', 'src/cli/commands/run.ts'],
    ['src/app/pull-stack.ts', 'workers/backfill.ts'],
    ['workers/ingest.ts', 'src/push/ingest.ts'],
    ['src/status/report.ts', 'src/pull/checkpoints.ts'],
    ['src/push/ingest.ts', 'src/influx/point-writer.ts'],
    ['src/influx/point-writer.ts', 'src/dead-letters/store.ts'],
    ['src/platform/client.ts', 'src/base/config.ts'],
    ['src/simulator/server.ts', 'src/base/log.ts'],
    ['src/simulator/server.ts', 'src/simulator/state.ts'],
  ])('%s -> %s is allowed', (from, to) => {
    expect(ruleBroken(from, to)).toBeUndefined();
  });

  test('every kind of import is seen, type-only and dynamic ones too', () => {
    const text = [
      "import { a } from './a.js';",
      "import type { B } from '../base/b.js';",
      "import './side-effect.js';",
      "export { c } from './c.js';",
      "export * from './d.js';",
      "const e = await import('./e.js');",
      "let f: import('./f.js').F;",
      "import fs from 'node:fs';",
      "import { Queue } from 'bullmq';",
      "// import { no } from './comment.js';",
    ].join('\n');
    const found = importsOf(REPO_ROOT, 'src/push/x.ts', text);
    expect(found.map((i) => [i.specifier, i.kind, i.line])).toEqual([
      ['./a.js', 'import', 1],
      ['../base/b.js', 'import type', 2],
      ['./side-effect.js', 'import', 3],
      ['./c.js', 'export from', 4],
      ['./d.js', 'export from', 5],
      ['./e.js', 'import()', 6],
      ['./f.js', 'import type()', 7],
    ]);
    // ../base/b.js from src/push names src/base/b.ts, which does not exist: unresolved, not guessed
    expect(found[1]!.to).toBeUndefined();
    expect(importsOf(REPO_ROOT, 'src/push/x.ts', "import { loadConfig } from '../base/config.js';")[0]!.to).toBe(
      'src/base/config.ts',
    );
  });

  test('a folder cycle is found, a chain is not one', () => {
    expect(
      folderCycles([
        ['a', 'b'],
        ['b', 'c'],
        ['c', 'a'],
        ['c', 'd'],
        ['d', 'd'],
      ]),
    ).toEqual([['a', 'b', 'c']]);
    expect(
      folderCycles([
        ['a', 'b'],
        ['b', 'c'],
        ['a', 'c'],
      ]),
    ).toEqual([]);
  });

  test('a circle of files inside one folder is found', () => {
    const edges: [string, string][] = [
      ['src/cli/main.ts', 'src/cli/commands/run.ts'],
      ['src/cli/commands/run.ts', 'src/cli/main.ts'],
      ['src/cli/commands/status.ts', 'src/cli/table.ts'],
    ];
    expect(folderCycles(edges)).toEqual([['src/cli/commands/run.ts', 'src/cli/main.ts']]);
  });

  test('constructions are found by class name', () => {
    const text =
      'const w = new InfluxPointWriter({});\nconst c = new platform.ExpeedClient({});\nconst q = new Queue("x");';
    expect(constructionsOf('x.ts', text, BUILT_ONLY_BY_THE_ROOT)).toEqual([
      { name: 'InfluxPointWriter', line: 1 },
      { name: 'ExpeedClient', line: 2 },
    ]);
  });

  test('function lengths are counted per function, nested ones on their own', () => {
    const text = [
      'function outer() {',
      '  const inner = () => {',
      '    return 1;',
      '  };',
      '  return inner();',
      '}',
      'class C {',
      '  m() {',
      '    return 2;',
      '  }',
      '}',
    ].join('\n');
    expect(functionLengths('x.ts', text)).toEqual([
      { name: 'outer', line: 1, lines: 6 },
      { name: 'inner', line: 2, lines: 3 },
      { name: 'm', line: 8, lines: 3 },
    ]);
  });

  test('lines are counted as an editor shows them', () => {
    expect([lineCount(''), lineCount('a'), lineCount('a\n'), lineCount('a\nb'), lineCount('a\nb\n')]).toEqual([
      0, 1, 1, 2, 2,
    ]);
  });
});

describe('the tree of src/ and workers/', () => {
  test('the scan sees the tree', () => {
    // a guard against a scan that silently finds nothing (a moved root, a wrong folder name)
    expect(files).toContain('src/app/service.ts');
    expect(files).toContain('workers/ingest.ts');
    expect(imports.filter((i) => i.to === 'src/base/config.ts').length).toBeGreaterThan(10);
  });

  test('every file is in a layer', () => {
    expect(files.filter((f) => unitOf(f) === undefined)).toEqual([]);
  });

  test('every relative import names a file', () => {
    const missing = imports.filter((i) => i.to === undefined).map((i) => `${i.from}:${i.line} '${i.specifier}'`);
    expect(missing).toEqual([]);
  });

  test('every import points down (or sideways where the rules allow it)', () => {
    const broken = imports.flatMap((i) => {
      if (i.to === undefined) return [];
      const why = ruleBroken(i.from, i.to);
      return why === undefined ? [] : [`${i.from}:${i.line} -> ${i.to} (${i.kind}): ${why}`];
    });
    expect(broken).toEqual([]);
  });

  test('no import cycle between folders', () => {
    const edges = imports.flatMap((i): [string, string][] => {
      const a = unitOf(i.from);
      const b = i.to === undefined ? undefined : unitOf(i.to);
      return a && b ? [[a.folder, b.folder]] : [];
    });
    const cycles = folderCycles(edges).map((group) => {
      const inside = imports.filter((i) => {
        const a = unitOf(i.from)?.folder;
        const b = i.to === undefined ? undefined : unitOf(i.to)?.folder;
        return a !== b && a !== undefined && b !== undefined && group.includes(a) && group.includes(b);
      });
      return `${group.join(' <-> ')}: ${inside.map((i) => `${i.from} -> ${i.to}`).join(', ')}`;
    });
    expect(cycles).toEqual([]);
  });

  test('no import cycle between files, inside a folder or across the sub-folders of one (src/cli/commands)', () => {
    // folderCycles is Tarjan's over any names: with files as the names it finds file circles
    const edges = imports.flatMap((i): [string, string][] => (i.to === undefined ? [] : [[i.from, i.to]]));
    expect(folderCycles(edges).map((group) => group.join(' -> '))).toEqual([]);
  });

  test(`only the composition root (${COMPOSITION_ROOT}) constructs ${BUILT_ONLY_BY_THE_ROOT.join(' and ')}`, () => {
    const outside = files
      .filter((f) => !f.startsWith(`${COMPOSITION_ROOT}/`))
      .flatMap((f) =>
        constructionsOf(f, texts.get(f)!, BUILT_ONLY_BY_THE_ROOT).map((c) => `${f}:${c.line} new ${c.name}`),
      );
    expect(outside).toEqual([]);
  });

  test(`no file over ${MAX_LINES} lines`, () => {
    const long = files
      .map((f) => ({ f, n: lineCount(texts.get(f)!) }))
      .filter(({ n }) => n > MAX_LINES)
      .map(({ f, n }) => `${f}: ${n} lines`);
    expect(long).toEqual([]);
  });

  test(`no function over ${MAX_FUNCTION_LINES} lines`, () => {
    const long = files.flatMap((f) =>
      functionLengths(f, texts.get(f)!)
        .filter((fn) => fn.lines > MAX_FUNCTION_LINES)
        .map((fn) => `${f}:${fn.line} ${fn.name}: ${fn.lines} lines`),
    );
    expect(long).toEqual([]);
  });
});

describe('the documents name the tree as it is', () => {
  const DOCS = ['README.md', 'docs/architecture.md'];
  const exists = (p: string) => existsSync(join(REPO_ROOT, p)) || existsSync(join(REPO_ROOT, `${p}.ts`));

  test.each(DOCS)('every src/ and workers/ path in %s exists', (doc) => {
    const text = readText(REPO_ROOT, doc);
    const paths = [...new Set(text.match(/(?<![\w./-])(?:src|workers)\/[\w./-]*[\w-]/g) ?? [])];
    expect(paths.length).toBeGreaterThan(5);
    expect(paths.filter((p) => !exists(p))).toEqual([]);
  });

  test("README's where table has a row for every folder of src/ and workers/", () => {
    const rows = readText(REPO_ROOT, 'README.md')
      .split('\n')
      .flatMap((l) => /^\| `((?:src\/[\w-]+|workers))\/` \|/.exec(l)?.[1] ?? []);
    const folders = [
      ...readdirSync(join(REPO_ROOT, 'src'), { withFileTypes: true })
        .filter((d) => d.isDirectory())
        .map((d) => `src/${d.name}`),
      'workers',
    ];
    expect(rows.sort()).toEqual(folders.sort());
  });

  test("docs/architecture.md's layer table is the one the rules use", () => {
    const table: Record<string, number | 'tool'> = {};
    for (const line of readText(REPO_ROOT, 'docs/architecture.md').split('\n')) {
      const m = /^\| (?:L(\d) \w+|(tool)) \| ([^|]+) \|/.exec(line);
      if (!m) continue;
      for (const [, folder] of m[3]!.matchAll(/`([^`]+)`/g)) table[folder!] = m[2] ? 'tool' : Number(m[1]);
    }
    expect(table).toEqual(LAYERS);
  });
});
