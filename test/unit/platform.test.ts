/** The emulated Secure Processor's platform side: states, commands, ownership, persistence. */
import t from 'tap';
import { fwStatus } from '../helpers/fw-status.js';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Platform, type PlatformOptions } from '../../server/firmware/platform.js';
import { SevDevice } from '../../server/firmware/sev-device.js';
import { FirmwareError, FwStatus } from '../../server/firmware/status.js';
import { verifyChain, splitPlatformCerts } from '../../abi/certs/chain.js';
import { decodeSevCert, encodeSevCert, Usage } from '../../abi/certs/sev-cert.js';
import { newP384Key } from '../../server/firmware/keys.js';
import { makeOcaCert, signSlot } from '../../abi/certs/issue.js';
import { STATE_FILE } from '../../server/firmware/nv-state.js';

const opts = (over: Partial<PlatformOptions> = {}): PlatformOptions => ({
  generation: 'milan', apiMajor: 1, apiMinor: 55, build: 21, seed: null,
  stateDir: mkdtempSync(join(tmpdir(), 'sevd-plat-')), ...over,
});


function chainOf(dev: SevDevice) {
  const { pdh, certs } = dev.pdhCertExport();
  const root = dev.platform.emulatedRoot;
  return { ...splitPlatformCerts(certs), pdh, ark: root.ark, ask: root.ask };
}

t.test('states and the allowed-command table', async (t) => {
  const p = new Platform(opts());
  t.equal(p.platformState, 'UNINIT');
  t.equal(fwStatus(() => p.pdhGen()), FwStatus.INVALID_PLATFORM_STATE, 'PDH_GEN in UNINIT');
  t.equal(fwStatus(() => p.shutdown()), FwStatus.INVALID_PLATFORM_STATE);
  t.equal(fwStatus(() => p.getId({ len: 64 })), 'ok', 'GET_ID in any state');
  p.init();
  t.equal(fwStatus(() => p.init()), FwStatus.INVALID_PLATFORM_STATE, 'INIT twice');
  t.equal(fwStatus(() => p.factoryReset()), FwStatus.INVALID_PLATFORM_STATE, 'PLATFORM_RESET needs UNINIT');
  p.contextCreated();
  t.equal(p.platformState, 'WORKING');
  t.equal(fwStatus(() => p.pekGen()), FwStatus.INVALID_PLATFORM_STATE, 'PEK_GEN in WORKING');
  t.equal(fwStatus(() => p.pdhGen()), 'ok', 'PDH_GEN in WORKING');
  const st = p.status();
  t.same([...st.raw], [1, 55, 2, 0, 1, 0, 0, 21, 1, 0, 0, 0], 'PLATFORM_STATUS bytes (CONFIG.ES set: milan has SEV-ES)');
  p.contextRemoved();
  t.equal(p.platformState, 'INIT', 'back to INIT when the last context goes');
  let decommissioned = 0;
  p.onShutdown(() => decommissioned++);
  p.shutdown();
  t.equal(decommissioned, 1);
  t.equal(p.platformState, 'UNINIT');
});

t.test('length queries write the required lengths and change nothing', async (t) => {
  const p = new Platform(opts());
  p.init();
  const before = p.certificates().pdh;
  const q = (fn: () => unknown) => {
    try {
      fn();
    } catch (e) {
      return e instanceof FirmwareError ? [e.status, e.lengths] : e;
    }
    return 'ok';
  };
  t.same(q(() => p.pdhCertExport(null, { len: 6252 })), [FwStatus.INVALID_LEN, { pdhLen: 2084, certsLen: 6252 }]);
  t.same(q(() => p.pdhCertExport({ len: 2084 }, { len: 100 })), [FwStatus.INVALID_LEN, { pdhLen: 2084, certsLen: 6252 }]);
  t.same(q(() => p.pekCsr({ len: 10 })), [FwStatus.INVALID_LEN, { len: 2084 }]);
  t.same(q(() => p.getId(null)), [FwStatus.INVALID_LEN, { len: 64 }]);
  t.ok(p.certificates().pdh.equals(before));
  const csr = decodeSevCert(p.pekCsr({ len: 2084 }));
  t.same([csr.usage, csr.sigs[0].usage, csr.sigs[1].usage, csr.apiMajor, csr.apiMinor], [Usage.PEK, 0x1000, 0x1000, 1, 55], 'CSR: both slots empty');
});

t.test('the platform chain verifies against the emulated root; PEK_GEN and PDH_GEN keep it valid', async (t) => {
  const dev = new SevDevice(new Platform(opts()));
  t.ok(verifyChain(chainOf(dev)).ok, 'fresh');
  const pdh1 = chainOf(dev).pdh;
  dev.pdhGen();
  t.notOk(chainOf(dev).pdh.equals(pdh1), 'new PDH');
  t.ok(verifyChain(chainOf(dev)).ok, 'after PDH_GEN');
  const oca1 = chainOf(dev).oca;
  dev.pekGen();
  t.notOk(chainOf(dev).oca.equals(oca1), 'PEK_GEN makes a new OCA');
  t.ok(verifyChain(chainOf(dev)).ok, 'after PEK_GEN');
  const cek = decodeSevCert(chainOf(dev).cek);
  t.same([cek.apiMajor, cek.apiMinor, cek.sigs[0].usage, cek.sigs[0].algo], [0, 14, 0x13, 0x101], 'CEK signed by the RSA-4096 ASK');
  t.ok(dev.platform.emulatedRoot.ark.subarray(4, 8).toString() === 'sevd', 'key id marks the root as sevd');
});

t.test('ownership round trip: CSR → owner OCA → import → external; factory reset → self again', async (t) => {
  const dev = new SevDevice(new Platform(opts()));
  const cekBefore = chainOf(dev).cek;
  const idBefore = dev.getId();
  const ownerOca = newP384Key();
  const ocaCert = makeOcaCert(ownerOca, { major: 0, minor: 0 });
  const csr = decodeSevCert(dev.pekCsr());
  const signedPek = encodeSevCert(signSlot(csr, 0, Usage.OCA, ownerOca));
  // Failures first, each without a state change.
  const badOca = Buffer.from(ocaCert);
  badOca[0x424] ^= 1; // inside r of the self-signature
  t.equal(fwStatus(() => dev.pekCertImport(signedPek, badOca)), FwStatus.BAD_SIGNATURE, 'OCA self-signature broken');
  t.equal(fwStatus(() => dev.pekCertImport(signedPek, ocaCert.subarray(0, 100))), FwStatus.INVALID_LEN);
  t.equal(fwStatus(() => dev.pekCertImport(ocaCert, ocaCert)), FwStatus.INVALID_CERTIFICATE, 'OCA given as PEK');
  const otherPek = encodeSevCert(signSlot(decodeSevCert(makeOcaCert(newP384Key(), { major: 0, minor: 0 })), 0, Usage.OCA, ownerOca));
  t.equal(fwStatus(() => dev.pekCertImport(otherPek, ocaCert)), FwStatus.INVALID_CERTIFICATE, 'not this platform\'s PEK');
  const wrongSigner = encodeSevCert(signSlot(csr, 0, Usage.OCA, newP384Key()));
  t.equal(fwStatus(() => dev.pekCertImport(wrongSigner, ocaCert)), FwStatus.BAD_SIGNATURE, 'PEK not signed by the OCA');
  t.equal(dev.status().owner, 'self');

  const pdhBefore = chainOf(dev).pdh;
  dev.pekCertImport(signedPek, ocaCert);
  const after = chainOf(dev);
  t.equal(dev.status().owner, 'external');
  t.ok(after.oca.equals(ocaCert), 'the OCA is stored as given (API 0.0)');
  t.notOk(after.pdh.equals(pdhBefore), 'a new PDH');
  const pek = decodeSevCert(after.pek);
  t.same([pek.sigs[0].usage, pek.sigs[1].usage], [Usage.OCA, Usage.CEK], 'CEK signature added in slot 2');
  t.ok(verifyChain(after).ok, 'chain still verifies');
  t.equal(fwStatus(() => dev.pekCertImport(signedPek, ocaCert)), FwStatus.ALREADY_OWNED);

  dev.factoryReset();
  const reset = chainOf(dev);
  t.equal(dev.status().owner, 'self');
  t.notOk(reset.pdh.equals(after.pdh), 'new PDH after reset');
  t.ok(verifyChain(reset).ok);
  t.ok(reset.cek.equals(cekBefore) && dev.getId().equals(idBefore), 'CEK and chip id are chip-unique and survive');
  dev.platform.contextCreated();
  t.equal(fwStatus(() => dev.factoryReset()), FwStatus.INVALID_PLATFORM_STATE, 'refused while guests exist');
});

t.test('persistence: same identity after reopening; a damaged file is an error', async (t) => {
  const o = opts();
  const a = new SevDevice(new Platform(o));
  a.pdhGen();
  const ca = chainOf(a);
  const b = new SevDevice(new Platform(o));
  const cb = chainOf(b);
  t.ok(ca.pdh.equals(cb.pdh) && ca.pek.equals(cb.pek) && ca.cek.equals(cb.cek) && a.getId().equals(b.getId()));
  const file = join(o.stateDir, STATE_FILE);
  const text = readFileSync(file, 'utf8');
  writeFileSync(file, text.slice(0, text.length / 2));
  t.throws(() => new Platform(o), /damaged \(not JSON/, 'truncated');
  writeFileSync(file, text.replace(/"owner": "self"/, '"owner": "external"'));
  t.throws(() => new Platform(o), /checksum/, 'edited');
  writeFileSync(file, text);
  t.throws(() => new Platform({ ...o, generation: 'rome' }), /belongs to a milan chip/);
  t.ok(new Platform(o).certificates().pdh.equals(ca.pdh), 'the intact file still loads');
});

t.test('platform.seed rebuilds the same chip', async (t) => {
  const seed = '00112233445566778899aabbccddeeff';
  const a = new SevDevice(new Platform(opts({ seed })));
  const b = new SevDevice(new Platform(opts({ seed })));
  const c = new SevDevice(new Platform(opts({ seed: 'ff' })));
  t.ok(a.getId().equals(b.getId()));
  t.ok(decodeSevCert(chainOf(a).cek).pubKey.kind === 'ec');
  const ka = decodeSevCert(chainOf(a).cek).pubKey;
  const kb = decodeSevCert(chainOf(b).cek).pubKey;
  t.ok(ka.kind === 'ec' && kb.kind === 'ec' && ka.qx.equals(kb.qx), 'same CEK key');
  t.notOk(chainOf(a).pdh.equals(chainOf(b).pdh), 'other keys stay random');
  t.notOk(a.getId().equals(c.getId()));
});
