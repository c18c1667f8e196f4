/**
 * End to end, as a guest owner would: an independent implementation (test/helpers/guest-owner,
 * @noble) builds GODH + session for the platform's PDH, verifies the launch measurement,
 * injects an EFI secret table and reads it back inside the guest, while the host sees only
 * ciphertext. Then the negative cases, each with its error and no state change.
 */
import t from 'tap';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { p384 } from '@noble/curves/nist.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { RawClient } from '../helpers/raw-client.js';
import { startSevd, type SevdProcess } from '../helpers/sevd-process.js';
import { buildLaunchSession, buildSecretPacket, launchDigest, verifyMeasurement, writeSessionFiles } from '../helpers/guest-owner.js';
import { builtinFirmware } from '../../server/guest/builtin-firmware.js';

const DEBIAN_OVMF = '/usr/share/OVMF/OVMF_CODE.fd';
const b64 = (s: string) => Buffer.from(s, 'base64');

async function platformCaps(ctl: RawClient) {
  return (await ctl.execute('query-sev-capabilities')).return;
}


async function guestMonitor(sevd: SevdProcess, name: string) {
  const g = await RawClient.connect(sevd.guestQmp(name));
  await g.negotiate();
  return g;
}

t.test('guest owner flow on Debian OVMF and on the built-in image', async (t) => {
  const sevd = await startSevd({ guests: [] });
  t.teardown(() => sevd.stop());
  const dir = mkdtempSync(join(tmpdir(), 'sevd-owner-'));
  const ctl = await RawClient.connect(sevd.controlPath);
  await ctl.negotiate();
  const caps = await platformCaps(ctl);
  const images = [
    { name: 'ovmf', firmware: DEBIAN_OVMF, bytes: () => readFileSync(DEBIAN_OVMF), gpa: 0x800000 },
    { name: 'builtin', firmware: undefined, bytes: () => builtinFirmware(), gpa: undefined },
  ];
  for (const img of images) {
    if (img.firmware && !existsSync(img.firmware)) {
      t.fail(`${img.firmware} is missing: install Debian's ovmf package`);
      continue;
    }
    const owner = buildLaunchSession(b64(caps.pdh), 0x1);
    const spec = { name: img.name, paused: true, memory: '1G', ...(img.firmware ? { firmware: img.firmware } : {}), 'sev-guest': { policy: 1, ...writeSessionFiles(dir, img.name, owner) } };
    t.same((await ctl.execute('guest-add', spec)).return, {}, `${img.name}: guest-add`);
    const g = await guestMonitor(sevd, img.name);
    const info = (await g.execute('query-sev')).return;
    t.match(info, { enabled: true, state: 'launch-secret', policy: 1, 'sev-type': 'sev' });
    t.same((await g.execute('query-status')).return, { status: 'prelaunch', running: false });
    const blob = (await g.execute('query-sev-launch-measure')).return.data;
    t.equal(blob.length, 64);
    const ld = launchDigest(img.bytes());
    t.ok(verifyMeasurement(owner, blob, { apiMajor: info['api-major'], apiMinor: info['api-minor'], build: info['build-id'] }, ld), `${img.name}: the measurement verifies`);

    const passphrase = Buffer.from(`luks passphrase for ${img.name} ${Date.now()}`);
    const entries = [
      { guid: '736869e5-84f0-4973-92ec-06879ce3da0b', data: passphrase },
      { guid: 'e6f5a162-d67f-4750-a67c-5d065f2a9910', data: Buffer.from('kbs offline key') },
    ];
    const pkt = buildSecretPacket(owner, blob, entries);
    if (img.gpa !== undefined) {
      t.same((await g.execute('sev-inject-launch-secret', { 'packet-header': pkt.header, secret: pkt.secret })).error.desc,
        'SEV: no secret area found in OVMF, gpa must be specified.', 'Debian OVMF lists the secret block with size 0');
    }
    const args = { 'packet-header': pkt.header, secret: pkt.secret, ...(img.gpa !== undefined ? { gpa: img.gpa } : {}) };
    t.same((await g.execute('sev-inject-launch-secret', args)).return, {}, `${img.name}: secret injected`);

    // Attestation report, checked with the PEK of the exported chain.
    const mnonce = Buffer.from(sha256(Buffer.from(img.name))).subarray(0, 16);
    const report = b64((await g.execute('query-sev-attestation-report', { mnonce: mnonce.toString('base64') })).return.data);
    t.equal(report.length, 208);
    t.ok(report.subarray(0, 16).equals(mnonce) && report.subarray(16, 48).equals(ld), 'report carries the mnonce and the launch digest');
    const pek = b64(caps['cert-chain']).subarray(0, 0x824);
    const pub = Buffer.concat([Buffer.from([4]), Buffer.from(pek.subarray(0x14, 0x44)).reverse(), Buffer.from(pek.subarray(0x5c, 0x8c)).reverse()]);
    const sig = Buffer.concat([Buffer.from(report.subarray(64, 112)).reverse(), Buffer.from(report.subarray(136, 184)).reverse()]);
    t.ok(p384.verify(sig, sha256(report.subarray(0, 52)), pub, { prehash: false, lowS: false }), 'report signed by the PEK');

    await g.execute('cont');
    t.equal((await g.execute('query-sev')).return.state, 'running');
    const agent = await RawClient.connect(sevd.guestQga(img.name));
    const secrets = (await agent.execute('guest-get-secrets')).return;
    t.same(secrets, entries.map((e) => ({ guid: e.guid, data: e.data.toString('base64') })), `${img.name}: the guest reads its secrets`);
    const area = img.gpa ?? 0x80c000;
    t.ok(b64((await agent.execute('guest-memory-read', { gpa: area, size: 64 })).return.data).equals(pkt.plaintext.subarray(0, 64)), 'guest view is plaintext');
    await agent.close();

    const dump = join(dir, `${img.name}.bin`);
    t.same((await g.execute('memsave', { val: area, size: 4096, filename: dump })).return, {});
    const host = readFileSync(dump);
    t.equal(host.indexOf(passphrase), -1, 'memsave of the secret area shows no plaintext');
    t.notOk(host.subarray(0, 64).equals(pkt.plaintext.subarray(0, 64)));
    const fw = img.bytes();
    t.same((await g.execute('pmemsave', { val: 2 ** 32 - fw.length, size: 4096, filename: dump })).return, {});
    t.notOk(readFileSync(dump).equals(fw.subarray(0, 4096)), 'the firmware is encrypted in memory');
    const xp = (await g.execute('human-monitor-command', { 'command-line': `xp /4xb 0x${area.toString(16)}` })).return;
    t.notMatch(xp, /0x42 0xf5 0x74 0x1e/, 'xp shows ciphertext (NODBG)');
    await g.close();
  }
  const list = (await ctl.execute('query-guests')).return;
  t.same(list.map((g: any) => [g.name, g['sev-state']]), [['ovmf', 'running'], ['builtin', 'running']]);
  await ctl.close();
});

t.test('negative cases: each fails with its error and changes nothing', async (t) => {
  const sevd = await startSevd({ guests: [], platform: { maxGuests: 3 } });
  t.teardown(() => sevd.stop());
  const dir = mkdtempSync(join(tmpdir(), 'sevd-neg-'));
  const ctl = await RawClient.connect(sevd.controlPath);
  await ctl.negotiate();
  const caps = await platformCaps(ctl);
  const pdh = b64(caps.pdh);
  const count = async () => (await ctl.execute('sev-platform-status')).return['guest-count'];
  const addErr = async (spec: object) => (await ctl.execute('guest-add', spec)).error?.desc;
  const nothingLeft = async (name: string) => {
    t.notOk((await ctl.execute('query-guests')).return.some((g: any) => g.name === name), `${name}: no guest`);
    t.notOk(existsSync(sevd.guestQmp(name)), `${name}: no socket`);
  };

  // Tampered session.
  const s1 = buildLaunchSession(pdh, 1);
  const tampered = b64(s1.sessionB64);
  tampered[0x20] ^= 1;
  const files = writeSessionFiles(dir, 'tampered', { ...s1, sessionB64: tampered.toString('base64') });
  t.equal(await addErr({ name: 'tampered', paused: true, 'sev-guest': { policy: 1, ...files } }), 'SEV: LAUNCH_START failed: fw_err=11 (Bad measurement)');
  await nothingLeft('tampered');
  t.equal(await count(), 0, 'no firmware context left');

  // Wrong policy: the session's POLICY_MAC binds policy 1.
  t.equal(await addErr({ name: 'wrongpol', paused: true, 'sev-guest': { policy: 3, ...writeSessionFiles(dir, 'wp', s1) } }), 'SEV: LAUNCH_START failed: fw_err=11 (Bad measurement)');
  t.equal(await addErr({ name: 'reserved', paused: true, 'sev-guest': { policy: 0x41 } }), 'SEV: LAUNCH_START failed: fw_err=7 (Policy is not allowed)');
  t.equal(await addErr({ name: 'minapi', paused: true, 'sev-guest': { policy: 0x00020001 } }), 'SEV: LAUNCH_START failed: fw_err=7 (Policy is not allowed)', 'minimum API 2.0 above the platform');
  // This host has SEV-ES, but its 3 ASIDs leave none below minSevAsid for ES guests: KVM's -EBUSY
  // (naples, without SEV-ES, is in test/integration/sev-es.test.ts).
  t.equal(await addErr({ name: 'es', paused: true, 'sev-guest': { policy: 0x5 } }), "sev_common_kvm_init: failed to initialize ret=-16 fw_error=0 ''");
  t.equal(await addErr({ name: 'cbit', paused: true, 'sev-guest': { policy: 1, cbitpos: 47 } }), "sev_common_kvm_init: cbitpos check failed, host '51' requested '47'");
  t.equal(await addErr({ name: 'badfile', paused: true, 'sev-guest': { policy: 1, 'dh-cert-file': '/nonexistent', 'session-file': '/nonexistent' } }),
    "SEV: Failed to read '/nonexistent' (Failed to open file “/nonexistent”: No such file or directory)");
  await nothingLeft('wrongpol');
  t.equal(await count(), 0);

  // Two guests; a packet for A replayed into B.
  const sa = buildLaunchSession(pdh, 0);
  const sb = buildLaunchSession(pdh, 0);
  t.same((await ctl.execute('guest-add', { name: 'a', paused: true, 'sev-guest': { policy: 0, ...writeSessionFiles(dir, 'a', sa) } })).return, {});
  t.same((await ctl.execute('guest-add', { name: 'b', paused: true, 'sev-guest': { policy: 0, ...writeSessionFiles(dir, 'b', sb) } })).return, {});
  const ga = await guestMonitor(sevd, 'a');
  const gb = await guestMonitor(sevd, 'b');
  const blobA = (await ga.execute('query-sev-launch-measure')).return.data;
  const pkt = buildSecretPacket(sa, blobA, [{ guid: '736869e5-84f0-4973-92ec-06879ce3da0b', data: Buffer.from('for A only') }]);
  t.same((await gb.execute('sev-inject-launch-secret', { 'packet-header': pkt.header, secret: pkt.secret })).error.desc,
    "SEV: failed to inject secret ret=-5 fw_error=11 'Bad measurement'", 'replayed packet refused');
  await gb.execute('cont');
  const agentB = await RawClient.connect(sevd.guestQga('b'));
  t.same((await agentB.execute('guest-get-secrets')).return, [], 'B got nothing');
  await agentB.close();
  t.same((await gb.execute('sev-inject-launch-secret', { 'packet-header': pkt.header, secret: pkt.secret })).error.desc,
    'SEV: Not in correct state. (LSECRET) 3', 'wrong state once running');
  t.same((await ga.execute('sev-inject-launch-secret', { 'packet-header': 'AAAA', secret: '!!!!' })).error.desc, 'SEV: Failed to decode data');
  t.same((await ga.execute('sev-inject-launch-secret', { 'packet-header': pkt.header, secret: pkt.secret, gpa: 0xfffff000 })).error.desc,
    'SEV: Failed to calculate guest address: Memory at address 0xfffff000 is not RAM');
  t.same((await ga.execute('sev-inject-launch-secret', { 'packet-header': pkt.header, secret: pkt.secret, gpa: 0x200000000 })).error.desc,
    'SEV: Failed to calculate guest address: No memory is mapped at address 0x200000000');
  t.same((await ga.execute('query-sev-attestation-report', { mnonce: 'AAAA' })).error.desc, 'SEV: mnonce must be 16 bytes (got 3)');

  // Debug policy (NODBG clear): the host dump goes through DBG_DECRYPT.
  const xp = (await ga.execute('human-monitor-command', { 'command-line': 'xp /8xb 0xfffc0000' })).return;
  t.match(xp, /0x73 0x65 0x76 0x64/, 'policy without NODBG: xp decrypts ("sevd")');
  t.same((await gb.execute('query-sev')).return.state, 'running');

  // Key sharing: allowed between two NOKS=0 guests, refused against NOKS.
  const handleA = (await ga.execute('query-sev')).return.handle;
  t.equal(await addErr({ name: 'noks', paused: true, 'sev-guest': { policy: 0x2, handle: handleA } }), 'SEV: LAUNCH_START failed: fw_err=7 (Policy is not allowed)');
  await nothingLeft('noks');
  t.same((await ctl.execute('guest-add', { name: 'shared', paused: true, 'sev-guest': { policy: 0, handle: handleA } })).return, {}, 'key sharing with a NOKS=0 guest');

  // ASID exhaustion: maxGuests 3 and three SEV guests exist.
  t.equal(await count(), 3);
  t.equal(await addErr({ name: 'fourth', paused: true, 'sev-guest': { policy: 1 } }), "sev_common_kvm_init: failed to initialize ret=-16 fw_error=0 ''");
  await nothingLeft('fourth');
  t.same((await ctl.execute('guest-del', { name: 'shared' })).return, {});
  t.same((await ctl.execute('guest-add', { name: 'fourth', paused: true, 'sev-guest': { policy: 1 } })).return, {}, 'a freed ASID is reused after DF_FLUSH');
  t.equal(await count(), 3);
  await Promise.all([ga.close(), gb.close(), ctl.close()]);
});
