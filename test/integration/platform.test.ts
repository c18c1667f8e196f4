/** The platform over QMP, the CLI export, and crash safety of the platform identity. */
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RawClient } from '../helpers/raw-client.js';
import { MAIN, startSevd } from '../helpers/sevd-process.js';
import { verifyChain } from '../../abi/certs/chain.js';
import { decodeSevCert, encodeSevCert, Usage } from '../../abi/certs/sev-cert.js';
import { newP384Key } from '../../server/firmware/keys.js';
import { makeOcaCert, signSlot } from '../../abi/certs/issue.js';

const b64 = (s: string) => Buffer.from(s, 'base64');

async function exported(c: RawClient) {
  const r = (await c.execute('sev-export-certs')).return;
  return { ark: b64(r.ark), ask: b64(r.ask), cek: b64(r.cek), oca: b64(r.oca), pek: b64(r.pek), pdh: b64(r.pdh) };
}

t.test('platform commands over QMP', async (t) => {
  const sevd = await startSevd({ guests: [{ name: 'g' }], platform: { generation: 'rome', cbitpos: 47, seed: 'abcd' } });
  t.teardown(() => sevd.stop());
  const c = await RawClient.connect(sevd.controlPath);
  await c.negotiate();
  t.same((await c.execute('sev-platform-status')).return,
    { 'api-major': 1, 'api-minor': 55, 'build-id': 21, state: 'init', owner: 'self', es: true, 'guest-count': 0 });
  const certs = await exported(c);
  t.ok(verifyChain(certs).ok, 'sev-export-certs chain verifies');
  const caps = (await c.execute('query-sev-capabilities')).return;
  t.equal(caps.pdh, certs.pdh.toString('base64'));
  t.equal(caps['cert-chain'], Buffer.concat([certs.pek, certs.oca, certs.cek]).toString('base64'));
  t.equal(caps['cert-chain'].length, 8336);
  t.equal(caps['cpu0-id'].length, 88);
  t.same([caps.cbitpos, caps['reduced-phys-bits']], [47, 1]);
  const g = await RawClient.connect(sevd.guestQmp('g'));
  await g.negotiate();
  t.same((await g.execute('query-sev-capabilities')).return, caps, 'the same on a guest monitor');
  await g.close();

  t.same((await c.execute('sev-pdh-gen')).return, {});
  const afterPdh = await exported(c);
  t.notOk(afterPdh.pdh.equals(certs.pdh));
  t.ok(verifyChain(afterPdh).ok);

  // Ownership: CSR → owner's OCA signs → import.
  const csr = decodeSevCert(b64((await c.execute('sev-pek-csr')).return.data));
  const oca = newP384Key();
  const ocaCert = makeOcaCert(oca, { major: 0, minor: 0 });
  const pek = encodeSevCert(signSlot(csr, 0, Usage.OCA, oca));
  const bad = await c.execute('sev-pek-cert-import', { 'pek-cert': pek.toString('base64'), 'oca-cert': Buffer.alloc(2084).toString('base64') });
  t.same(bad.error, { class: 'GenericError', desc: 'SEV: PEK_CERT_IMPORT failed: fw_err=6 (Certificate is invalid)' });
  t.same((await c.execute('sev-pek-cert-import', { 'pek-cert': pek.toString('base64'), 'oca-cert': ocaCert.toString('base64') })).return, {});
  t.equal((await c.execute('sev-platform-status')).return.owner, 'external');
  const owned = await exported(c);
  t.ok(owned.oca.equals(ocaCert));
  t.ok(verifyChain(owned).ok, 'chain verifies with the external OCA');
  t.same((await c.execute('sev-pek-cert-import', { 'pek-cert': pek.toString('base64'), 'oca-cert': ocaCert.toString('base64') })).error.desc,
    'SEV: PEK_CERT_IMPORT failed: fw_err=5 (Platform is already owned)');
  t.same((await c.execute('sev-factory-reset')).return, {});
  t.equal((await c.execute('sev-platform-status')).return.owner, 'self');
  const reset = await exported(c);
  t.notOk(reset.pdh.equals(owned.pdh));
  t.ok(reset.cek.equals(certs.cek), 'the CEK is chip-unique');
  t.same((await c.execute('sev-pek-gen')).return, {});
  t.ok(verifyChain(await exported(c)).ok);
  await c.close();
});

t.test('sevd platform export writes the files guest-owner tools use', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sevd-export-'));
  const r = spawnSync(process.execPath, [MAIN, 'platform', 'export', '--out', join(dir, 'out'), '--state-dir', join(dir, 'state')], { encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  const f = (n: string) => readFileSync(join(dir, 'out', n));
  t.ok(verifyChain({ ark: f('ark.cert'), ask: f('ask.cert'), cek: f('cek.cert'), oca: f('oca.cert'), pek: f('pek.cert'), pdh: f('pdh.cert') }).ok);
  t.ok(f('ask_ark.cert').equals(Buffer.concat([f('ask.cert'), f('ark.cert')])));
  // The daemon started on the same state directory has the same identity.
  const sevd = await startSevd({ stateDir: join(dir, 'state'), guests: [] });
  const c = await RawClient.connect(sevd.controlPath);
  await c.negotiate();
  t.ok((await exported(c)).pdh.equals(f('pdh.cert')));
  await c.close();
  await sevd.stop();
});

t.test('kill -9 during PDH_GEN: after a restart the chain still verifies', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sevd-crash-'));
  const cfg = join(dir, 'c.json');
  writeFileSync(cfg, JSON.stringify({ runDir: join(dir, 'run'), stateDir: join(dir, 'state'), websocket: false, guests: [] }));
  for (let round = 0; round < 3; round++) {
    const proc = spawn(process.execPath, [MAIN, '--config', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
    await new Promise<void>((r) => proc.stdout.on('data', (d) => d.toString().includes('sevd ready') && r()));
    const c = await RawClient.connect(join(dir, 'run', 'sevd.qmp'));
    await c.negotiate();
    t.ok(verifyChain(await exported(c)).ok, `round ${round}: chain verifies after restart`);
    // Fire PDH_GENs back to back and kill the process in the middle of them.
    for (let i = 0; i < 200; i++) c.send('{"execute":"sev-pdh-gen"}');
    await c.next(10000); // at least one completed: the rest are in flight
    await new Promise((r) => setTimeout(r, 5 + round * 20));
    proc.kill('SIGKILL');
    await new Promise((r) => proc.once('exit', r));
    t.ok(c.lines.length + 1 < 200, `round ${round}: killed mid-stream after ${c.lines.length + 1} PDH_GENs`);
    c.socket.destroy();
  }
  const proc = spawn(process.execPath, [MAIN, '--config', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
  await new Promise<void>((r) => proc.stdout.on('data', (d) => d.toString().includes('sevd ready') && r()));
  const c = await RawClient.connect(join(dir, 'run', 'sevd.qmp'));
  await c.negotiate();
  t.ok(verifyChain(await exported(c)).ok, 'final restart: chain verifies');
  proc.kill('SIGTERM');
  await new Promise((r) => proc.once('exit', r));
});

t.test('a damaged state file stops start-up with a clear error', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sevd-bad-'));
  const state = join(dir, 'state');
  spawnSync(process.execPath, [MAIN, 'platform', 'export', '--out', join(dir, 'o'), '--state-dir', state]);
  writeFileSync(join(state, 'platform.json'), '{"format":');
  const r = spawnSync(process.execPath, [MAIN, '--state-dir', state, '--run-dir', join(dir, 'run'), '--ws-port', '0'], { encoding: 'utf8', timeout: 10000 });
  t.equal(r.status, 1);
  t.match(r.stderr, /platform state .*platform.json is damaged/);
  t.match(r.stderr, /refusing to start with a new identity/);
});
