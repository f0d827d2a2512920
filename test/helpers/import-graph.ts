// The import graph of src/ and workers/ and the layer rules of docs/architecture.md, as pure
// functions over paths relative to the repository root ('src/push/ingest.ts'), so that the
// architecture test can check the tree and also check the rules themselves on made-up edges.
import { readdirSync, readFileSync, existsSync, statSync } from 'node:fs';
import { dirname, join, posix, relative, resolve } from 'node:path';
import ts from 'typescript';

/** A unit of the layering: a top folder (`src/push`, `workers`) with its layer. */
export interface Unit {
  folder: string;
  /** 0 base … 6 cli; the simulator is a tool outside the ladder. */
  layer: number | 'tool';
}

export const LAYER_NAMES: Record<number, string> = {
  0: 'L0 base',
  1: 'L1 foundation',
  2: 'L2 flows',
  3: 'L3 views',
  4: 'L4 workers',
  5: 'L5 app',
  6: 'L6 cli',
};

export const LAYERS: Readonly<Record<string, number | 'tool'>> = {
  'src/base': 0,
  'src/platform': 1,
  'src/influx': 1,
  'src/dead-letters': 1,
  'src/devices': 1,
  'src/ops': 1,
  'src/pull': 2,
  'src/push': 2,
  'src/settings': 2,
  'src/rollup': 2,
  'src/status': 3,
  workers: 4,
  'src/app': 5,
  'src/cli': 6,
  'src/simulator': 'tool',
};

/** The unit a file belongs to, or undefined for a file in no known folder (itself a failure). */
export function unitOf(file: string): Unit | undefined {
  const parts = file.split('/');
  const folder = parts[0] === 'workers' ? 'workers' : parts.length > 2 ? `${parts[0]}/${parts[1]}` : undefined;
  if (folder === undefined || !(folder in LAYERS)) return undefined;
  return { folder, layer: LAYERS[folder]! };
}

/** Why the import `from -> to` breaks a rule, or undefined when it is allowed. */
export function ruleBroken(from: string, to: string): string | undefined {
  const a = unitOf(from);
  const b = unitOf(to);
  if (a === undefined) return `${from} is in no layer (put it in one of the folders of docs/architecture.md)`;
  if (b === undefined) return `${to} is in no layer`;
  if (a.folder === b.folder) return undefined;
  if (a.layer === 'tool') {
    return b.folder === 'src/base' ? undefined : 'the simulator imports only itself and src/base';
  }
  if (b.layer === 'tool') {
    return a.folder === 'src/cli' ? undefined : 'only src/cli (and tests, bench) may import the simulator';
  }
  if (a.layer > b.layer) return undefined;
  if (a.layer < b.layer) return `${LAYER_NAMES[a.layer]} imports ${LAYER_NAMES[b.layer]}: arrows point down only`;
  if (a.layer === 1) return undefined; // foundation folders may use each other (folder cycles are checked apart)
  if (a.layer === 2) return 'a flow never imports another flow';
  return 'a folder imports a sibling of its own layer';
}

export interface Import {
  from: string;
  /** the specifier as written */
  specifier: string;
  /** the resolved file, relative to the root; undefined when a relative specifier names no file */
  to: string | undefined;
  line: number;
  kind: 'import' | 'import type' | 'export from' | 'import()' | 'import type()' | 'require';
}

/** Every .ts file under the given folders, relative to root, sorted. */
export function sourceFiles(root: string, folders: string[]): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const full = join(dir, name);
      if (statSync(full).isDirectory()) walk(full);
      else if (name.endsWith('.ts')) out.push(relative(root, full).split('\\').join('/'));
    }
  };
  for (const f of folders) if (existsSync(join(root, f))) walk(join(root, f));
  return out.sort();
}

function resolveSpecifier(root: string, from: string, specifier: string): string | undefined {
  const base = posix.join(posix.dirname(from), specifier);
  const candidates = [
    base.replace(/\.js$/, '.ts'),
    base.replace(/\.mjs$/, '.mts'),
    `${base}.ts`,
    `${base}/index.ts`,
    base,
  ];
  for (const c of candidates) {
    const full = resolve(root, c);
    if (existsSync(full) && statSync(full).isFile()) return c;
  }
  return undefined;
}

const parsed = new Map<string, ts.SourceFile>();

/** One parse per file and text: the import scan and the construction scan share it. */
function parse(file: string, text: string): ts.SourceFile {
  const seen = parsed.get(file);
  if (seen !== undefined && seen.text === text) return seen;
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  parsed.set(file, sf);
  return sf;
}

/** Every import of one file's text: static, type-only, `export ... from`, `import()`, `import('x').T`, require(). */
export function importsOf(root: string, file: string, text: string): Import[] {
  const sf = parse(file, text);
  const found: Import[] = [];
  const add = (spec: ts.Node, kind: Import['kind']): void => {
    if (!ts.isStringLiteralLike(spec)) return;
    const specifier = spec.text;
    if (!specifier.startsWith('.')) return; // a package or node: builtin
    const line = sf.getLineAndCharacterOfPosition(spec.getStart(sf)).line + 1;
    found.push({ from: file, specifier, to: resolveSpecifier(root, file, specifier), line, kind });
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node)) {
      add(node.moduleSpecifier, node.importClause?.isTypeOnly ? 'import type' : 'import');
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier) {
      add(node.moduleSpecifier, 'export from');
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      add(node.moduleReference.expression, 'require');
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword && node.arguments[0]) {
      add(node.arguments[0], 'import()');
    } else if (
      ts.isCallExpression(node) &&
      ts.isIdentifier(node.expression) &&
      node.expression.text === 'require' &&
      node.arguments[0]
    ) {
      add(node.arguments[0], 'require');
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
      add(node.argument.literal, 'import type()');
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return found;
}

/** `new X(` expressions of the given class names in one file's text, with their lines. */
export function constructionsOf(file: string, text: string, classNames: string[]): { name: string; line: number }[] {
  const sf = parse(file, text);
  const out: { name: string; line: number }[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isNewExpression(node)) {
      const e = node.expression;
      const name = ts.isIdentifier(e) ? e.text : ts.isPropertyAccessExpression(e) ? e.name.text : undefined;
      if (name !== undefined && classNames.includes(name)) {
        out.push({ name, line: sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1 });
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

/** The strongly connected groups (more than one folder) of a folder graph: each is a folder cycle. */
export function folderCycles(edges: Iterable<[string, string]>): string[][] {
  const next = new Map<string, Set<string>>();
  for (const [a, b] of edges) {
    if (a === b) continue;
    if (!next.has(a)) next.set(a, new Set());
    if (!next.has(b)) next.set(b, new Set());
    next.get(a)!.add(b);
  }
  // Tarjan's algorithm
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const groups: string[][] = [];
  const strong = (v: string): void => {
    idx.set(v, index);
    low.set(v, index);
    index++;
    stack.push(v);
    onStack.add(v);
    for (const w of next.get(v)!) {
      if (!idx.has(w)) {
        strong(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const group: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        group.push(w);
      } while (w !== v);
      if (group.length > 1) groups.push(group.sort());
    }
  };
  for (const v of [...next.keys()].sort()) if (!idx.has(v)) strong(v);
  return groups;
}

/** Lines of a text as an editor counts them (a final newline does not start a line). */
export function lineCount(text: string): number {
  if (text === '') return 0;
  return text.split('\n').length - (text.endsWith('\n') ? 1 : 0);
}

export function readText(root: string, file: string): string {
  return readFileSync(join(root, file), 'utf8');
}

export const REPO_ROOT = resolve(dirname(new URL(import.meta.url).pathname), '../..');
