/**
 * The layer rules, checked by scanning every import: clients/ never import server/; abi/
 * (the SEV formats shared by chip and guest owner) imports neither, and no I/O either; the
 * independent test guest owner imports neither server/ nor abi/, so that the end-to-end
 * tests keep proving the library against a second implementation. Inside server/, the
 * request path's layers import only downward, the SEV context reaches the firmware only
 * through KVM, and the QMP floor knows neither faults nor metrics (README, Layout).
 */
import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const ROOT = resolve('.');
const IMPORT = /(?:^|[\s;])(?:import|export)\s[^'"`]*?from\s*['"]([^'"]+)['"]|(?:^|[\s;(])import\s*\(\s*['"]([^'"]+)['"]\s*\)|(?:^|[\s;])import\s*['"]([^'"]+)['"]/gm;

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { recursive: true }).map(String).filter((f) => f.endsWith('.ts')).map((f) => join(dir, f));
}

interface Import {
  spec: string;
  /** For a relative import: the top folder it lands in, and its path from the repository root (as .ts). */
  top: string | null;
  path: string | null;
  /** `import type` / `export type`: names only, nothing runs. */
  typeOnly: boolean;
}

/** Each import of a file. */
function imports(file: string): Import[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  return [...text.matchAll(IMPORT)].map((m) => {
    const spec = (m[1] ?? m[2] ?? m[3])!;
    const path = spec.startsWith('.') ? relative(ROOT, resolve(ROOT, dirname(file), spec)).replace(/\.js$/, '.ts') : null;
    const top = path === null ? null : path.split('/')[0]!;
    return { spec, top, path, typeOnly: /^(?:import|export)\s+type\s/.test(m[0].replace(/^[\s;(]+/, '')) };
  });
}

function violations(files: string[], bad: (i: Import) => boolean): string[] {
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

/** The folder of server/ a path is in ('main.ts' for the entry point), or null outside server/. */
const serverFolder = (path: string | null): string | null => (path?.startsWith('server/') ? path.split('/')[1]! : null);

/** The request path, top to bottom (README, Layout). */
const CHAIN = ['transport', 'qmp', 'dispatch', 'sev', 'guest', 'kvm', 'firmware', 'memory'];
/**
 * What a layer may use of one above it at run time: the protocol's shared values (JSON values,
 * version checks). QmpError is not among them: it lives in server/errors/, outside the chain.
 */
const SHARED = ['server/qmp/json/', 'server/dispatch/version.ts'];

/** An import of `file` that reaches up the request path: more than types, and not a shared value. */
function upward(file: string, i: Import): boolean {
  const from = CHAIN.indexOf(serverFolder(file) ?? '');
  const to = CHAIN.indexOf(serverFolder(i.path) ?? '');
  if (from < 0 || to < 0 || to >= from || i.typeOnly) return false;
  return !SHARED.some((s) => i.path!.startsWith(s));
}

t.test('the server/ scanner sees folders, type-only imports and an upward reach', async (t) => {
  const monitor = imports('server/qmp/monitor.ts');
  t.ok(monitor.some((i) => serverFolder(i.path) === 'dispatch' && i.typeOnly), 'monitor.ts names the dispatcher type');
  t.ok(imports('server/daemon/daemon.ts').some((i) => serverFolder(i.path) === 'firmware' && !i.typeOnly), 'daemon.ts builds the firmware');
  const session = { spec: '../qmp/session.js', top: 'server', path: 'server/qmp/session.ts', typeOnly: false };
  t.ok(upward('server/sev/sev-guest.ts', session), 'sev running qmp/session code would be upward');
  t.notOk(upward('server/sev/sev-guest.ts', { ...session, typeOnly: true }), 'a type is not');
  t.notOk(upward('server/sev/sev-guest.ts', { ...session, path: 'server/errors/qmp-error.ts' }), 'nor QmpError (server/errors/)');
  t.ok(upward('server/sev/sev-guest.ts', { ...session, path: 'server/qmp/errors.ts' }), "but the QMP floor's catalogue would be");
  t.notOk(upward('server/qmp/session.ts', { ...session, path: 'server/dispatch/dispatcher.ts' }), 'downward is fine');
});

t.test('server/: each layer of the request path imports only downward', async (t) => {
  const files = sources('server');
  t.same(files.flatMap((f) => imports(f).filter((i) => upward(f, i)).map((i) => `${f} imports ${i.spec}`)), []);
});

t.test('server/sev/ never imports server/firmware/: the SEV context reaches the chip through KVM', async (t) => {
  t.same(violations(sources('server/sev'), (i) => serverFolder(i.path) === 'firmware'), []);
  t.ok(imports('server/kvm/kvm-sev.ts').some((i) => serverFolder(i.path) === 'firmware'), '(KVM does)');
});

t.test('server/errors/ (what every layer throws) imports nothing else of server/', async (t) => {
  t.same(violations(sources('server/errors'), (i) => i.path !== null && serverFolder(i.path) !== 'errors'), []);
  t.ok(imports('server/sev/qemu-errors.ts').some((i) => serverFolder(i.path) === 'errors'), '(the layers import it)');
});

t.test('server/qmp/ imports neither faults/ nor observability/: the daemon installs hooks', async (t) => {
  t.same(violations(sources('server/qmp'), (i) => ['faults', 'observability'].includes(serverFolder(i.path) ?? '')), []);
});

t.test('only server/daemon/ and server/main.ts import server/daemon/; server/util/ imports no other folder', async (t) => {
  const files = sources('server').filter((f) => !['daemon', 'main.ts'].includes(serverFolder(f)!));
  t.same(violations(files, (i) => serverFolder(i.path) === 'daemon'), []);
  t.same(violations(sources('server/util'), (i) => i.path !== null && serverFolder(i.path) !== 'util'), []);
});
