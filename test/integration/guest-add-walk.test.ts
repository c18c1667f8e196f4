/**
 * The guest-add walk (issue 22): every member of GUEST_SPEC, for each guest kind (plain,
 * sev, sev-es, sev-snp), with bad files (missing, a directory, empty, the wrong size, one
 * that cannot be read: a FIFO, a dangling symlink, a device, and outside the allowed
 * directories over a WebSocket with a token) and bad values. No answer is `internal
 * error`; every refusal leaves the host as it was (guests, ASIDs, firmware contexts,
 * sockets, persisted guests); a missing kernel or initrd is refused for every kind, with
 * or without kernel-hashes, as QEMU refuses to start.
 */
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QmpClient, QMPError } from '../../clients/qmp/client.js';
import { RawClient } from '../helpers/raw-client.js';
import { startSevd, type SevdProcess } from '../helpers/sevd-process.js';

const FULL = 'walk-token-0123456789';
type Spec = Record<string, unknown>;
type Kind = 'plain' | 'sev' | 'sev-es' | 'sev-snp';
const KINDS: Kind[] = ['plain', 'sev', 'sev-es', 'sev-snp'];

/** The confidential-guest object of each kind, with `extra` members merged in. */
function kindSpec(kind: Kind, extra: Spec = {}): Spec {
  if (kind === 'plain') return {};
  if (kind === 'sev-snp') return { 'sev-snp-guest': { ...extra } };
  return { 'sev-guest': { policy: kind === 'sev-es' ? 5 : 1, ...extra } };
}

function layout(t: { teardown(fn: () => unknown): void }) {
  const dir = mkdtempSync(join(tmpdir(), 'sevd-walk-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const images = join(dir, 'images');
  const inputs = join(dir, 'inputs');
  const outside = join(dir, 'outside');
  for (const d of [images, inputs, outside]) mkdirSync(d);
  const good = { kernel: join(images, 'vmlinuz'), initrd: join(images, 'initrd.img') };
  writeFileSync(good.kernel, Buffer.alloc(8192, 0x4b));
  writeFileSync(good.initrd, Buffer.alloc(4096, 0x49));
  /** Bad files of each sort, in `base` (an allowed directory). */
  const bad = (base: string) => {
    const f = {
      missing: join(base, 'missing'),
      directory: join(base, 'a-directory'),
      empty: join(base, 'empty'),
      'wrong size': join(base, 'odd-size'),
      fifo: join(base, 'fifo'),
      'dangling symlink': join(base, 'dangling'),
    };
    mkdirSync(f.directory);
    writeFileSync(f.empty, '');
    writeFileSync(f['wrong size'], Buffer.alloc(1000, 0x41));
    if (spawnSync('mkfifo', [f.fifo]).status !== 0) throw new Error('mkfifo failed');
    symlinkSync(join(base, 'nowhere'), f['dangling symlink']);
    return f;
  };
  const badImages = bad(images);
  const badInputs = bad(inputs);
  const outsideFile = join(outside, 'file');
  writeFileSync(outsideFile, Buffer.alloc(4096, 0x4f));
  return { images, inputs, good, badImages, badInputs, outsideFile };
}

/** What a refused guest-add must leave as it was. */
async function hostState(sevd: SevdProcess, ctl: RawClient) {
  const asids = (await ctl.execute('query-asids')).return;
  const stateFile = join(sevd.stateDir, 'guests.json');
  return {
    guests: (await ctl.execute('query-guests')).return.map((g: { name: string }) => g.name),
    asids: { inUse: asids['in-use'], free: asids.free },
    contexts: (await ctl.execute('sev-platform-status')).return['guest-count'],
    sockets: existsSync(join(sevd.runDir, 'guests')) ? readdirSync(join(sevd.runDir, 'guests')).sort() : [],
    persisted: existsSync(stateFile) ? JSON.parse(readFileSync(stateFile, 'utf8')).guests.map((g: { name: string }) => g.name) : [],
  };
}

interface Case {
  what: string;
  spec: Spec;
  /** The refusal this case must get (a substring), or undefined when QEMU would accept it too. */
  refused?: string;
}

/** The file cases for each kind: every member that names a file, with every bad file. */
function fileCases(L: ReturnType<typeof layout>, kind: Kind, where: 'unix' | 'websocket'): Case[] {
  const cases: Case[] = [];
  const must = (sort: string) => sort !== 'empty' && sort !== 'wrong size';
  const badFiles = (set: Record<string, string>) => Object.entries(set).concat(where === 'websocket' ? [['outside', L.outsideFile]] : [['device', '/dev/zero']]);
  const hashModes = kind === 'plain' ? [false] : [false, true];
  for (const hashes of hashModes) {
    const h = hashes ? { 'kernel-hashes': true } : {};
    for (const [sort, path] of badFiles(L.badImages)) {
      const refusedAs = (text: string) => (sort === 'outside' ? `Path '${path}' is not allowed for images` : where === 'websocket' && must(sort) ? undefined : text);
      cases.push({ what: `${kind}${hashes ? '+hashes' : ''} kernel ${sort}`, spec: { kernel: path, ...kindSpec(kind, h) }, refused: must(sort) ? refusedAs(`could not load kernel '${path}'`) : undefined });
      cases.push({ what: `${kind}${hashes ? '+hashes' : ''} initrd ${sort}`, spec: { kernel: L.good.kernel, initrd: path, ...kindSpec(kind, h) }, refused: must(sort) ? refusedAs(`could not load initial ram disk '${path}'`) : undefined });
    }
  }
  for (const [sort, path] of badFiles(L.badImages)) {
    const firmwareText = sort === 'empty' || sort === 'wrong size' ? `Firmware image '${path}' must be` : `Could not load firmware '${path}'`;
    cases.push({ what: `${kind} firmware ${sort}`, spec: { firmware: path, ...kindSpec(kind) }, refused: sort === 'outside' ? `Path '${path}' is not allowed for images` : where === 'websocket' && must(sort) ? '' : firmwareText });
  }
  const inputMembers = kind === 'sev' || kind === 'sev-es' ? ['dh-cert-file', 'session-file'] : kind === 'sev-snp' ? ['certs-filename'] : [];
  for (const m of inputMembers) {
    for (const [sort, path] of badFiles(L.badInputs)) {
      const text = m === 'certs-filename' ? `SEV-SNP: failed to read certificate table '${path}'` : `SEV: Failed to read '${path}'`;
      cases.push({
        what: `${kind} ${m} ${sort}`, spec: kindSpec(kind, { [m]: path }),
        refused: sort === 'outside' ? `Path '${path}' is not allowed for inputs` : must(sort) ? (where === 'websocket' ? '' : text) : undefined,
      });
    }
  }
  return cases;
}

/** Bad values of the other members, for each kind. */
function valueCases(kind: Kind): Case[] {
  const k = (extra: Spec = {}) => kindSpec(kind, extra);
  const cases: Case[] = [
    { what: 'memory not a multiple of 4096', spec: { memory: 12345, ...k() }, refused: "Invalid memory size '12345'" },
    { what: 'memory text', spec: { memory: 'lots', ...k() }, refused: "Invalid memory size 'lots'" },
    { what: 'memory 0', spec: { memory: 0, ...k() } },
    { what: 'smp 0', spec: { smp: 0, ...k() }, refused: 'Invalid SMP CPUs 0' },
    { what: 'smp too many', spec: { smp: 100000, ...k() }, refused: 'Invalid SMP CPUs 100000' },
    { what: 'smp 4 on the built-in image', spec: { smp: 4, ...k() } },
    { what: 'unknown cpu', spec: { cpu: 'pentium-pro', ...k() }, refused: "unable to find CPU model 'pentium-pro'" },
    { what: 'bad incoming', spec: { incoming: 'carrier-pigeon:x', ...k() }, refused: "Invalid incoming URI 'carrier-pigeon:x'" },
    { what: 'append without kernel', spec: { append: 'console=ttyS0', ...k() } },
  ];
  if (kind === 'plain') return cases.map((c) => ({ ...c, what: `${kind} ${c.what}` }));
  cases.push(
    { what: 'cbitpos', spec: k({ cbitpos: 12 }), refused: 'cbitpos check failed' },
    { what: 'reduced-phys-bits 0', spec: k({ 'reduced-phys-bits': 0 }), refused: 'reduced_phys_bits check failed' },
    { what: 'reduced-phys-bits 64', spec: k({ 'reduced-phys-bits': 64 }), refused: 'reduced_phys_bits check failed' },
    { what: 'kernel-hashes without kernel', spec: k({ 'kernel-hashes': true }) },
  );
  if (kind === 'sev-snp') {
    cases.push(
      { what: 'policy without the reserved bit', spec: k({ policy: 0 }) },
      { what: 'policy all ones', spec: k({ policy: 0xffffffff }) },
      { what: 'gosvw too long', spec: k({ 'guest-visible-workarounds': Buffer.alloc(17).toString('base64') }), refused: 'exceeds max of 16' },
      { what: 'id-block wrong size', spec: k({ 'id-block': Buffer.alloc(95).toString('base64') }), refused: 'not equal to 96' },
      { what: 'id-block not base64', spec: k({ 'id-block': '!!!!' }), refused: 'Base64 data is not valid' },
      { what: 'id-block garbage (refused at the first run)', spec: k({ 'id-block': Buffer.alloc(96, 7).toString('base64') }) },
      { what: 'id-auth too long', spec: k({ 'id-auth': Buffer.alloc(4097).toString('base64') }), refused: 'exceeds max of 4096' },
      { what: 'host-data wrong size', spec: k({ 'host-data': Buffer.alloc(31).toString('base64') }), refused: 'not equal to 32' },
    );
  } else {
    cases.push(
      { what: 'policy all ones', spec: k({ policy: 0xffffffff }) },
      { what: 'handle of no context', spec: k({ handle: 4242 }) },
      { what: 'legacy-vm-type on', spec: k({ 'legacy-vm-type': 'on' }) },
    );
  }
  return cases.map((c) => ({ ...c, what: `${kind} ${c.what}` }));
}

/** Sends each case; checks the answer and that a refusal left nothing (an accepted guest is removed). */
async function walk(t: Test, sevd: SevdProcess, ctl: RawClient, add: (spec: Spec) => Promise<string | undefined>, cases: Case[]) {
  const before = await hostState(sevd, ctl);
  let n = 0;
  for (const c of cases) {
    const name = `walk${n++}`;
    const err = await add({ name, paused: true, ...c.spec });
    if (err !== undefined) {
      t.notOk(/internal error/i.test(err), `${c.what}: not an internal error (${err})`);
      if (c.refused !== undefined) t.ok(err.includes(c.refused), `${c.what}: refused as QEMU would (${err})`);
      t.same(await hostState(sevd, ctl), before, `${c.what}: nothing left behind`);
    } else {
      t.equal(c.refused, undefined, `${c.what}: accepted`);
      await ctl.execute('guest-del', { name });
      t.same(await hostState(sevd, ctl), before, `${c.what}: accepted, then removed without trace`);
    }
  }
}

t.test('every guest-add member, bad files and values, each guest kind', async (t) => {
  const L = layout(t);
  const sevd = await startSevd({
    guests: [],
    websocket: { port: 0, tokens: [{ token: FULL, access: 'full' }] },
    paths: { images: [L.images], inputs: [L.inputs] },
  });
  t.teardown(() => sevd.stop());
  const ctl = await RawClient.connect(sevd.controlPath);
  await ctl.negotiate();
  const overUnix = async (spec: Spec) => {
    const r = await ctl.execute('guest-add', spec);
    return r.error ? String(r.error.desc) : undefined;
  };
  const ws = await QmpClient.connect(`ws://127.0.0.1:${sevd.wsPort}/qmp`, { headers: { Authorization: `Bearer ${FULL}` }, timeoutMs: 10000 });
  t.teardown(() => ws.close());
  const overWebSocket = async (spec: Spec) => {
    try {
      await ws.execute('guest-add', spec);
      return undefined;
    } catch (e) {
      if (e instanceof QMPError) return e.desc;
      throw e;
    }
  };
  for (const kind of KINDS) {
    await walk(t, sevd, ctl, overUnix, [...fileCases(L, kind, 'unix'), ...valueCases(kind)]);
    await walk(t, sevd, ctl, overWebSocket, fileCases(L, kind, 'websocket'));
  }
  // And a good kernel and initrd are still accepted for each kind, measured or not.
  for (const kind of KINDS) {
    for (const hashes of kind === 'plain' ? [false] : [false, true]) {
      const r = await ctl.execute('guest-add', { name: `good-${kind}-${hashes}`, paused: true, kernel: L.good.kernel, initrd: L.good.initrd, ...kindSpec(kind, hashes ? { 'kernel-hashes': true } : {}) });
      // The built-in image has no hashes table: QEMU's text, never an internal error.
      if (r.error) t.match(r.error.desc, /has no hashes table GUID/, `${kind}${hashes ? '+hashes' : ''}: good files, ${r.error.desc}`);
      else await ctl.execute('guest-del', { name: `good-${kind}-${hashes}` });
    }
  }
  t.ok(sevd.log.every((l) => !/internal error/i.test(l)), 'the log has no internal error');
});

t.test('the defects: SNP kernel-hashes with an unreadable kernel; a missing kernel or initrd for every kind', async (t) => {
  const sevd = await startSevd({ guests: [] });
  t.teardown(() => sevd.stop());
  const ctl = await RawClient.connect(sevd.controlPath);
  await ctl.negotiate();
  const missing = join(tmpdir(), `sevd-walk-missing-${process.pid}`);
  const desc = async (spec: Spec) => (await ctl.execute('guest-add', { name: 'g', paused: true, ...spec })).error?.desc;
  t.equal(await desc({ kernel: missing, 'sev-snp-guest': { 'kernel-hashes': true } }), `could not load kernel '${missing}': No such file or directory`, 'SNP with kernel-hashes');
  for (const kind of KINDS) {
    t.equal(await desc({ kernel: missing, ...kindSpec(kind) }), `could not load kernel '${missing}': No such file or directory`, `${kind}: missing kernel`);
    t.equal(await desc({ kernel: '/dev/null', initrd: missing, ...kindSpec(kind) }), `could not load kernel '/dev/null': Invalid argument`, `${kind}: a device as kernel`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'sevd-walk-k-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const kernel = join(dir, 'vmlinuz');
  writeFileSync(kernel, 'kernel');
  for (const kind of KINDS) {
    t.equal(await desc({ kernel, initrd: missing, ...kindSpec(kind) }), `could not load initial ram disk '${missing}': No such file or directory`, `${kind}: missing initrd`);
  }
  t.same((await ctl.execute('query-guests')).return, [], 'no guest was added');
});
