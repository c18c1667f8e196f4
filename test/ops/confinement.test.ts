/**
 * Confinement (docs/interface.md §14), tried as an attacker holding a WebSocket token would: no
 * file outside the operator's directories is written, created, opened or read, whatever
 * the name (absolute, `../`, a symlink planted in an allowed directory, a FIFO that would
 * block any open). Unix-socket clients keep QEMU's behaviour unless `confine: all`.
 * Read-only tokens run queries only.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QmpClient, QgaClient } from '../../clients/qmp/client.js';
import { startSevd, type SevdProcess } from '../helpers/sevd-process.js';
import { refusal } from '../helpers/qmp-outcome.js';

const FULL = 'full-token-0123456789';
const RO = 'read-only-token-0123456789';

function layout() {
  const dir = mkdtempSync(join(tmpdir(), 'sevd-confine-'));
  const images = join(dir, 'images');
  const inputs = join(dir, 'inputs');
  const outside = join(dir, 'outside');
  for (const d of [images, inputs, outside]) mkdirSync(d);
  writeFileSync(join(images, 'fw.fd'), Buffer.alloc(64 * 1024));
  writeFileSync(join(outside, 'fw.fd'), Buffer.alloc(64 * 1024));
  writeFileSync(join(outside, 'keep'), 'keep');
  // A FIFO: opening it for reading would block until a writer comes, so a reply proves no open.
  execFileSync('mkfifo', [join(outside, 'fifo')]);
  return { dir, images, inputs, outside };
}

async function ws(sevd: SevdProcess, path: string, token = FULL) {
  return QmpClient.connect(`ws://127.0.0.1:${sevd.wsPort}${path}`, { headers: { Authorization: `Bearer ${token}` }, timeoutMs: 5000 });
}

t.test('WebSocket clients reach only the configured directories', async (t) => {
  const L = layout();
  const sevd = await startSevd({
    websocket: { port: 0, tokens: [{ token: FULL, access: 'full' }, { token: RO, access: 'read-only' }] },
    paths: { images: [L.images], inputs: [L.inputs] },
    guests: [{ name: 'g', memory: '16M', paused: true, 'sev-guest': { policy: 1 } }],
  });
  t.teardown(async () => {
    await sevd.stop();
    rmSync(L.dir, { recursive: true, force: true });
  });
  const dumps = join(sevd.stateDir, 'dumps');
  const migration = join(sevd.stateDir, 'migration');
  t.equal(statSync(dumps).mode & 0o777, 0o700, 'dumps directory created 0700');
  t.equal(statSync(migration).mode & 0o777, 0o700, 'migration directory created 0700');
  const g = await ws(sevd, '/qmp/g');
  const ctl = await ws(sevd, '/qmp');

  // Dumps.
  const escape = [
    [join(L.outside, 'new.bin'), 'an absolute path outside'],
    ['../platform.json', 'a ../ escape from the dumps directory'],
    [`${dumps}/../guests.json`, 'an absolute ../ escape'],
    ['/proc/self/fd/1', 'a /proc path'],
  ];
  for (const [name, what] of escape) {
    for (const cmd of ['memsave', 'pmemsave']) {
      t.equal(await refusal(g.execute(cmd, { val: 0, size: 4096, filename: name })), `Path '${name}' is not allowed for dumps`, `${cmd}: ${what}`);
    }
  }
  t.notOk(existsSync(join(L.outside, 'new.bin')), 'no file created outside');
  symlinkSync(join(L.outside, 'keep'), join(dumps, 'link-existing'));
  symlinkSync(join(L.outside, 'made-through-link'), join(dumps, 'link-new'));
  symlinkSync(L.outside, join(dumps, 'dir-link'));
  for (const name of ['link-existing', 'link-new', 'dir-link/keep', join(dumps, 'link-existing')]) {
    t.equal(await refusal(g.execute('memsave', { val: 0, size: 4096, filename: name })), `Path '${name}' is not allowed for dumps`, `memsave through a symlink planted in dumps (${name})`);
  }
  t.equal(readFileSync(join(L.outside, 'keep'), 'utf8'), 'keep', 'the symlink target is unchanged');
  t.notOk(existsSync(join(L.outside, 'made-through-link')), 'no file created through a dangling symlink');
  t.same(await g.execute('memsave', { val: 0, size: 8192, filename: 'g.dump' }), {}, 'a relative name is written');
  t.equal(statSync(join(dumps, 'g.dump')).size, 8192, '... in the dumps directory');
  t.equal(statSync(join(dumps, 'g.dump')).mode & 0o777, 0o600, '... with mode 0600');
  writeFileSync(join(dumps, 'loose'), 'x', { mode: 0o644 });
  t.same(await g.execute('pmemsave', { val: 0, size: 4096, filename: join(dumps, 'loose') }), {}, 'an absolute name inside dumps is written');
  t.equal(statSync(join(dumps, 'loose')).mode & 0o777, 0o600, 'an existing file is made 0600');

  // guest-add: images and inputs. A reply at all proves the FIFO was never opened.
  const fifo = join(L.outside, 'fifo');
  const adds: [Record<string, unknown>, string, string][] = [
    [{ name: 'a1', firmware: fifo }, fifo, 'images'],
    [{ name: 'a2', firmware: '/proc/self/environ' }, '/proc/self/environ', 'images'],
    [{ name: 'a3', firmware: join(L.outside, 'fw.fd') }, join(L.outside, 'fw.fd'), 'images'],
    [{ name: 'a4', firmware: `${L.images}/../outside/fw.fd` }, `${L.images}/../outside/fw.fd`, 'images'],
    [{ name: 'a5', kernel: fifo, 'sev-guest': { policy: 1, 'kernel-hashes': true } }, fifo, 'images'],
    [{ name: 'a6', initrd: fifo }, fifo, 'images'],
    [{ name: 'a7', 'sev-guest': { policy: 1, 'dh-cert-file': fifo } }, fifo, 'inputs'],
    [{ name: 'a8', 'sev-guest': { policy: 1, 'session-file': join(L.images, 'fw.fd') } }, join(L.images, 'fw.fd'), 'inputs'],
    [{ name: 'a9', incoming: `file:${join(L.outside, 'snap')}` }, join(L.outside, 'snap'), 'migration'],
    [{ name: 'a10', incoming: `unix:${join(L.outside, 'keep')}` }, join(L.outside, 'keep'), 'migration'],
  ];
  for (const [spec, path, kind] of adds) {
    t.equal(await refusal(ctl.execute('guest-add', spec)), `Path '${path}' is not allowed for ${kind}`, `guest-add ${JSON.stringify(spec)}`);
  }
  t.ok(existsSync(join(L.outside, 'keep')), 'an incoming unix: path outside was not unlinked');
  t.same((await ctl.execute('query-guests') as any[]).map((x) => x.name), ['g'], 'no guest was created');
  t.same(await ctl.execute('guest-add', { name: 'ok', firmware: 'fw.fd', paused: true }), {}, 'a relative image name resolves in images');
  t.same(await ctl.execute('guest-add', { name: 'ok2', firmware: join(L.images, 'fw.fd'), paused: true }), {}, 'an absolute one inside images works');
  const stored = JSON.parse(readFileSync(join(sevd.stateDir, 'guests.json'), 'utf8')).guests.map((x: any) => x.firmware);
  t.same(stored, [join(L.images, 'fw.fd'), join(L.images, 'fw.fd')], 'definitions are remembered with the resolved path');

  // Migration files.
  t.equal(await refusal(g.execute('migrate', { uri: `file:${join(L.outside, 'snap')}` })), `Path '${join(L.outside, 'snap')}' is not allowed for migration`);
  t.equal(await refusal(g.execute('migrate', { uri: 'file:../platform.json' })), "Path '../platform.json' is not allowed for migration");
  t.notOk(existsSync(join(L.outside, 'snap')), 'no migration file created outside');
  t.same((await g.execute('query-migrate') as any).status, undefined, 'no migration was started');

  // The same over the Unix socket: as before (QEMU's behaviour).
  const u = await QmpClient.connect(sevd.guestQmp('g'));
  t.same(await u.execute('memsave', { val: 0, size: 4096, filename: join(L.outside, 'unix.dump') }), {}, 'Unix socket: memsave outside dumps works as before');
  t.equal(statSync(join(L.outside, 'unix.dump')).size, 4096);
  const uc = await QmpClient.connect(sevd.controlPath);
  t.same(await uc.execute('guest-add', { name: 'u1', firmware: join(L.outside, 'fw.fd'), paused: true }), {}, 'Unix socket: guest-add from anywhere works as before');
  await Promise.all([u.close(), uc.close()]);

  // A read-only token.
  const rg = await ws(sevd, '/qmp/g', RO);
  const rc = await ws(sevd, '/qmp', RO);
  t.equal((await rg.execute('query-status') as any).status, 'prelaunch', 'read-only: query-status works');
  t.match(await rg.execute('human-monitor-command', { 'command-line': 'info status' }), /VM status/, 'read-only: HMP info works');
  for (const [c, cmd, args] of [
    [rg, 'stop', undefined], [rg, 'cont', undefined], [rg, 'memsave', { val: 0, size: 4096, filename: 'ro.dump' }],
    [rg, 'human-monitor-command', { 'command-line': 'xp /1x 0' }], [rg, 'sev-inject-launch-secret', { packet_header: 'AA==', secret: 'AA==' }],
    [rc, 'guest-add', { name: 'ro' }], [rc, 'guest-del', { name: 'g' }], [rc, 'sev-pdh-gen', undefined], [rc, 'quit', undefined],
  ] as const) {
    t.equal(await refusal((c as QmpClient).execute(cmd, args as Record<string, unknown> | undefined)), `Command '${cmd}' is not allowed with a read-only token`, `read-only: ${cmd} refused`);
  }
  t.equal((await g.execute('query-status') as any).status, 'prelaunch', 'nothing changed');
  t.notOk(existsSync(join(dumps, 'ro.dump')));
  await t.rejects(QgaClient.connect(`ws://127.0.0.1:${sevd.wsPort}/qga/g`, { headers: { Authorization: `Bearer ${RO}` } }), /HTTP 403/, 'read-only: the guest agent refuses the upgrade');
  const qga = await QgaClient.connect(`ws://127.0.0.1:${sevd.wsPort}/qga/g`, { headers: { Authorization: `Bearer ${FULL}` } });
  await qga.close();
  await t.rejects(ws(sevd, '/qmp', 'wrong'), /HTTP 401/, 'an unknown token: 401');
  const metrics = await (await fetch(`http://127.0.0.1:${sevd.wsPort}/metrics`, { headers: { Authorization: `Bearer ${RO}` } })).text();
  t.match(metrics, /sevd_access_refusals_total\{reason="read-only"\} 9/, '/metrics counts read-only refusals');
  t.match(metrics, /sevd_access_refusals_total\{reason="read-only-agent"\} 1/);
  t.match(metrics, /sevd_access_refusals_total\{reason="path-dumps"\} \d+/);
  await Promise.all([g.close(), ctl.close(), rg.close(), rc.close()]);
  t.same(readdirSync(L.outside).sort(), ['fifo', 'fw.fd', 'keep', 'unix.dump'], 'outside: only what the Unix client wrote');
});

t.test('confine: all also confines Unix-socket clients; confine: none confines nobody', async (t) => {
  const L = layout();
  t.teardown(() => rmSync(L.dir, { recursive: true, force: true }));
  const all = await startSevd({ paths: { images: [L.images], confine: 'all' }, guests: [{ name: 'g', memory: '16M', paused: true }] });
  const u = await QmpClient.connect(all.guestQmp('g'));
  const target = join(L.outside, 'x.dump');
  t.equal(await refusal(u.execute('memsave', { val: 0, size: 4096, filename: target })), `Path '${target}' is not allowed for dumps`);
  const uc = await QmpClient.connect(all.controlPath);
  t.equal(await refusal(uc.execute('guest-add', { name: 'x', firmware: join(L.outside, 'fw.fd') })), `Path '${join(L.outside, 'fw.fd')}' is not allowed for images`);
  await Promise.all([u.close(), uc.close()]);
  await all.stop();
  t.notOk(existsSync(target));

  const none = await startSevd({ paths: { confine: 'none' }, guests: [{ name: 'g', memory: '16M', paused: true }] });
  const w = await QmpClient.connect(`ws://127.0.0.1:${none.wsPort}/qmp/g`);
  t.same(await w.execute('memsave', { val: 0, size: 4096, filename: target }), {}, 'confine: none: a WebSocket client writes where it likes');
  await w.close();
  await none.stop();
});
