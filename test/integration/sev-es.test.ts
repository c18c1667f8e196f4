/**
 * SEV-ES end to end, as a guest owner would: milan and rome launch a 4-vCPU ES guest on
 * Debian's OVMF_CODE.fd; an independent owner (test/helpers/guest-owner, @noble) makes the
 * session, checks the measurement against the digest the owner toolkit predicts (firmware,
 * then one VMSA per vCPU; the builder is pinned by vectors E1/E2 in test/unit/sev-es.test.ts),
 * injects a secret the guest then reads, and the host sees no plaintext of memory or VMSAs.
 * naples refuses ES; an ES guest's migration is refused before anything moves.
 */
import t from 'tap';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RawClient } from '../helpers/raw-client.js';
import { startSevd, type SevdProcess } from '../helpers/sevd-process.js';
import { freePort } from '../helpers/free-port.js';
import { buildLaunchSession, buildSecretPacket, verifyMeasurement, writeSessionFiles } from '../helpers/guest-owner.js';
import { launchDigest } from '../../clients/owner/owner.js';

const OVMF = '/usr/share/OVMF/OVMF_CODE.fd';
const VMSA_BASE = 0xff_fff0_0000;
const SECRET_GPA = 0x800000;
const b64 = (s: string) => Buffer.from(s, 'base64');
/** G_PAT as KVM sets it, little-endian: in every plaintext VMSA at 0x268. */
const G_PAT = Buffer.from('0604070006040700', 'hex');


async function connect(path: string) {
  const c = await RawClient.connect(path);
  await c.negotiate();
  return c;
}

async function esGuest(t: { same(a: unknown, b: unknown, m: string): unknown }, sevd: SevdProcess, dir: string, o: { name: string; cpu: string; policy: number; legacy?: boolean }) {
  const ctl = await connect(sevd.controlPath);
  const caps = (await ctl.execute('query-sev-capabilities')).return;
  const owner = buildLaunchSession(b64(caps.pdh), o.policy);
  const spec = {
    name: o.name, paused: true, memory: '1G', firmware: OVMF, smp: 4, cpu: o.cpu,
    'sev-guest': { policy: o.policy, ...writeSessionFiles(dir, o.name, owner), ...(o.legacy ? { 'legacy-vm-type': 'on' } : {}) },
  };
  t.same((await ctl.execute('guest-add', spec)).return, {}, `${o.name}: guest-add with 4 vCPUs`);
  await ctl.close();
  return { owner, g: await connect(sevd.guestQmp(o.name)) };
}

for (const [generation, cpu] of [['milan', 'EPYC-Milan'], ['rome', 'EPYC-Rome']] as const) {
  t.test(`${generation}: an SEV-ES guest with 4 vCPUs, launched and attested by its owner`, { skip: !existsSync(OVMF) && 'Debian ovmf missing' }, async (t) => {
    const sevd = await startSevd({ guests: [], platform: { generation } });
    t.teardown(() => sevd.stop());
    const dir = mkdtempSync(join(tmpdir(), 'sevd-es-'));
    const ctl = await connect(sevd.controlPath);
    t.equal((await ctl.execute('sev-platform-status')).return.es, true, 'the platform reports SEV-ES');
    const { owner, g } = await esGuest(t, sevd, dir, { name: 'es', cpu, policy: 0x5 });
    const info = (await g.execute('query-sev')).return;
    t.match(info, { enabled: true, state: 'launch-secret', policy: 5, 'sev-type': 'sev' }, 'query-sev as QEMU shows an ES guest');
    const api = { apiMajor: info['api-major'], apiMinor: info['api-minor'], build: info['build-id'] };
    const blob = (await g.execute('query-sev-launch-measure')).return.data;
    const fw = readFileSync(OVMF);
    const ld = launchDigest(fw, undefined, { vcpus: 4, vcpuType: cpu });
    t.ok(verifyMeasurement(owner, blob, api, ld), 'the measurement covers the firmware and the four VMSAs');
    t.notOk(verifyMeasurement(owner, blob, api, launchDigest(fw)), 'the firmware alone does not verify');
    t.notOk(verifyMeasurement(owner, blob, api, launchDigest(fw, undefined, { vcpus: 3, vcpuType: cpu })), 'nor three VMSAs');

    const passphrase = Buffer.from(`es passphrase ${generation} ${Date.now()}`);
    const entries = [{ guid: '736869e5-84f0-4973-92ec-06879ce3da0b', data: passphrase }];
    const pkt = buildSecretPacket(owner, blob, entries);
    t.same((await g.execute('sev-inject-launch-secret', { 'packet-header': pkt.header, secret: pkt.secret, gpa: SECRET_GPA })).return, {}, 'secret injected');
    const mnonce = Buffer.alloc(16, 7);
    const report = b64((await g.execute('query-sev-attestation-report', { mnonce: mnonce.toString('base64') })).return.data);
    t.ok(report.subarray(16, 48).equals(ld), 'the attestation report carries the digest over memory and VMSAs');

    t.same((await g.execute('cont')).return, {});
    const agent = await RawClient.connect(sevd.guestQga('es'));
    t.same((await agent.execute('guest-get-secrets')).return, entries.map((e) => ({ guid: e.guid, data: e.data.toString('base64') })), 'the guest reads its secret');
    t.same((await agent.execute('guest-sev-features')).return, { sev: true, 'sev-es': true, 'sev-snp': false, 'sev-features': 0 }, 'guest-sev-features');
    t.match((await agent.execute('guest-memory-read', { gpa: VMSA_BASE, size: 16 })).error, { class: 'GenericError' }, 'the guest cannot read its VMSAs');
    await agent.close();

    const dump = join(dir, 'dump.bin');
    t.same((await g.execute('memsave', { val: SECRET_GPA, size: 4096, filename: dump })).return, {});
    t.equal(readFileSync(dump).indexOf(passphrase), -1, 'memsave of the secret shows no plaintext');
    t.same((await g.execute('pmemsave', { val: VMSA_BASE, size: 4 * 4096, filename: dump })).return, {});
    const vmsas = readFileSync(dump);
    t.equal(vmsas.length, 4 * 4096);
    t.equal(vmsas.indexOf(G_PAT), -1, 'pmemsave of the four VMSA pages shows no plaintext register state');
    t.ok(vmsas.some((b) => b !== 0), '... but their ciphertext');
    const xp = (await g.execute('human-monitor-command', { 'command-line': `xp /8xb 0x${(VMSA_BASE + 0x268).toString(16)}` })).return;
    t.notMatch(xp, /0x06 0x04 0x07 0x00 0x06 0x04 0x07 0x00/, 'xp of a VMSA shows ciphertext');
    await g.close();
    t.same((await ctl.execute('query-guests')).return.map((x: any) => [x.name, x.status, x['sev-state']]), [['es', 'running', 'running']]);
    await ctl.close();
  });
}

t.test('milan: DBG_DECRYPT reads an ES guest with debugging allowed, but never its VMSAs; legacy-vm-type', { skip: !existsSync(OVMF) && 'Debian ovmf missing' }, async (t) => {
  const sevd = await startSevd({ guests: [] });
  t.teardown(() => sevd.stop());
  const dir = mkdtempSync(join(tmpdir(), 'sevd-es-'));
  const { g } = await esGuest(t, sevd, dir, { name: 'dbg', cpu: 'EPYC-v4', policy: 0x4 });
  const fwBase = 2 ** 32 - readFileSync(OVMF).length;
  const plainFw = readFileSync(OVMF).subarray(0, 16);
  const xpFw = (await g.execute('human-monitor-command', { 'command-line': `xp /16xb 0x${fwBase.toString(16)}` })).return as string;
  const hex = [...plainFw].map((b) => `0x${b.toString(16).padStart(2, '0')}`).join(' ');
  t.ok(xpFw.replace(/\s+/g, ' ').includes(hex.slice(0, 39)), 'debug policy: xp of the firmware shows plaintext (DBG_DECRYPT)');
  const xpVmsa = (await g.execute('human-monitor-command', { 'command-line': `xp /8xb 0x${(VMSA_BASE + 0x268).toString(16)}` })).return;
  t.notMatch(xpVmsa, /0x06 0x04 0x07 0x00 0x06 0x04 0x07 0x00/, 'but DBG_DECRYPT refuses the VMSA: xp shows ciphertext');
  await g.close();

  // legacy-vm-type=on: KVM_SEV_ES_INIT, whose VMSAs lack the FPU control words.
  const { owner, g: lg } = await esGuest(t, sevd, dir, { name: 'legacy', cpu: 'EPYC-v4', policy: 0x5, legacy: true });
  const info = (await lg.execute('query-sev')).return;
  const api = { apiMajor: info['api-major'], apiMinor: info['api-minor'], build: info['build-id'] };
  const blob = (await lg.execute('query-sev-launch-measure')).return.data;
  const fw = readFileSync(OVMF);
  t.ok(verifyMeasurement(owner, blob, api, launchDigest(fw, undefined, { vcpus: 4, vcpuType: 'EPYC-v4', legacyVmType: true })), 'legacy VM type: the older VMSA layout is measured');
  t.notOk(verifyMeasurement(owner, blob, api, launchDigest(fw, undefined, { vcpus: 4, vcpuType: 'EPYC-v4' })), '... not the KVM_SEV_INIT2 one');
  await lg.close();
});

t.test('naples refuses an ES policy with QEMU\'s text; bad smp and cpu are refused', async (t) => {
  const sevd = await startSevd({ guests: [], platform: { generation: 'naples', cbitpos: 47 } });
  t.teardown(() => sevd.stop());
  const ctl = await connect(sevd.controlPath);
  t.equal((await ctl.execute('sev-platform-status')).return.es, false);
  t.same((await ctl.execute('guest-add', { name: 'es', paused: true, 'sev-guest': { policy: 0x5 } })).error,
    { class: 'GenericError', desc: 'sev_common_kvm_init: guest policy requires SEV-ES, but host SEV-ES support unavailable' });
  t.match((await ctl.execute('guest-add', { name: 'x', smp: 0 })).error.desc, /^Invalid SMP CPUs 0\./);
  t.match((await ctl.execute('guest-add', { name: 'x', cpu: 'Pentium' })).error.desc, /^unable to find CPU model 'Pentium' \(known: EPYC, /);
  t.same((await ctl.execute('query-guests')).return, [], 'nothing was created');
  t.same((await ctl.execute('sev-platform-status')).return['guest-count'], 0, 'no firmware context left');
  await ctl.close();
});

t.test('an ES guest\'s migration is refused before anything is sent; both hosts unchanged', { skip: !existsSync(OVMF) && 'Debian ovmf missing' }, async (t) => {
  const a = await startSevd({ guests: [] });
  const b = await startSevd({ guests: [] });
  t.teardown(async () => {
    await a.stop();
    await b.stop();
  });
  const dir = mkdtempSync(join(tmpdir(), 'sevd-es-'));
  const { g } = await esGuest(t, a, dir, { name: 'es', cpu: 'EPYC-v4', policy: 0x5 });
  await g.execute('cont');
  const port = await freePort();
  const bctl = await connect(b.controlPath);
  t.same((await bctl.execute('guest-add', { name: 'es', incoming: `tcp:127.0.0.1:${port}`, 'sev-guest': { policy: 0x5 } })).return, {});
  const bg = await connect(b.guestQmp('es'));
  const before = (await bg.execute('query-migrate')).return;
  t.same((await g.execute('migrate', { uri: `tcp:127.0.0.1:${port}` })).error, { class: 'GenericError', desc: 'SEV: Migration is not implemented' }, 'QEMU\'s blocker text');
  t.same((await g.execute('query-migrate')).return, {}, 'no migration was started on the source');
  t.same((await g.execute('query-status')).return, { status: 'running', running: true }, 'the source runs on');
  t.same((await bg.execute('query-migrate')).return, before, 'the target saw nothing');
  t.same((await bg.execute('query-status')).return.status, 'inmigrate');
  await Promise.all([g.close(), bg.close(), bctl.close()]);
});
