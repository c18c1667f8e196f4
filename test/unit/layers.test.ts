/**
 * The layer rules, checked by scanning every import: clients/ never import server/; abi/
 * (the SEV formats shared by chip and guest owner) imports neither, and no I/O either; the
 * independent test guest owner imports neither server/ nor abi/, so that the end-to-end
 * tests keep proving the library against a second implementation.
 */
import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const ROOT = resolve('.');
const IMPORT = /(?:^|[\s;])(?:import|export)\s[^'"`]*?from\s*['"]([^'"]+)['"]|(?:^|[\s;(])import\s*\(\s*['"]([^'"]+)['"]\s*\)|(?:^|[\s;])import\s*['"]([^'"]+)['"]/gm;

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { recursive: true }).map(String).filter((f) => f.endsWith('.ts')).map((f) => join(dir, f));
}

/** Each import of a file: the specifier and, for a relative one, the top folder it lands in. */
function imports(file: string): { spec: string; top: string | null }[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  return [...text.matchAll(IMPORT)].map((m) => {
    const spec = (m[1] ?? m[2] ?? m[3])!;
    const top = spec.startsWith('.') ? relative(ROOT, resolve(ROOT, dirname(file), spec)).split('/')[0]! : null;
    return { spec, top };
  });
}

function violations(files: string[], bad: (i: { spec: string; top: string | null }) => boolean): string[] {
  return files.flatMap((f) => imports(f).filter(bad).map((i) => `${f} imports ${i.spec}`));
}

t.test('the import scanner sees imports (a check that cannot fail would prove nothing)', async (t) => {
  const found = imports('clients/owner/owner.ts');
  t.ok(found.some((i) => i.top === 'abi'), 'owner.ts imports the library');
  t.ok(imports('server/daemon/daemon.ts').some((i) => i.top === 'server'), 'relative imports resolve to their folder');
  t.ok(imports('test/unit/layers.test.ts').some((i) => i.spec === 'node:fs'));
});

t.test('clients/ never import server/', async (t) => {
  t.same(violations(sources('clients'), (i) => i.top === 'server' || i.top === 'test'), []);
  t.ok(imports('clients/owner/cli.ts').some((i) => i.top === 'cli'), '(they may use cli/)');
});

t.test('abi/ imports neither server/ nor clients/, and does no I/O', async (t) => {
  const allowed = (s: string) => s.startsWith('.') || s === 'node:crypto' || s.startsWith('@noble/');
  t.same(violations(sources('abi'), (i) => (i.top !== null && i.top !== 'abi') || !allowed(i.spec)), []);
});

t.test('cli/ (command-line definitions) imports nothing of sevd: any program may use it', async (t) => {
  t.same(violations(sources('cli'), (i) => (i.top !== null && i.top !== 'cli') || !(i.spec.startsWith('.') || i.spec.startsWith('node:'))), []);
});

t.test('the independent test guest owner uses neither the library nor the server', async (t) => {
  t.same(violations(['test/helpers/guest-owner.ts'], (i) => i.top !== null && i.top !== 'test'), []);
});
