/** Certificate codecs and chain verification against AMD's real chains (T8). */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { p384 } from '@noble/curves/nist.js';
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import { decodeSevCert, encodeSevCert, isSignedBy, sevCertSigner, SEV_CERT_BODY_SIZE, type SevCert } from '../../abi/certs/sev-cert.js';
import { amdCertSignedBy, askSigner, decodeAmdCert, encodeAmdCert } from '../../abi/certs/amd-cert.js';
import { splitAskArk, verifyChain, type ChainBlobs } from '../../abi/certs/chain.js';

const F = 'test/fixtures';
function chain(gen: 'naples' | 'rome'): ChainBlobs {
  const chip = (n: string) => readFileSync(`${F}/chips/${gen}/${n}.cert`);
  return {
    ark: readFileSync(`${F}/amd-roots/${gen}/ark.cert`), ask: readFileSync(`${F}/amd-roots/${gen}/ask.cert`),
    cek: chip('cek'), oca: chip('oca'), pek: chip('pek'), pdh: chip('pdh'),
  };
}

for (const gen of ['naples', 'rome'] as const) {
  t.test(`${gen}: byte-exact round trips and T8 properties`, async (t) => {
    const c = chain(gen);
    for (const k of ['cek', 'oca', 'pek', 'pdh'] as const) t.ok(encodeSevCert(decodeSevCert(c[k])).equals(c[k]), `${k} round trip`);
    for (const k of ['ark', 'ask'] as const) t.ok(encodeAmdCert(decodeAmdCert(c[k]).cert).equals(c[k]), `${k} round trip`);
    const cek = decodeSevCert(c.cek);
    t.same([cek.apiMajor, cek.apiMinor, cek.usage, cek.algo, cek.sigs[0].usage, cek.sigs[0].algo, cek.sigs[1].usage],
      [0, 14, 0x1004, 0x002, 0x13, gen === 'naples' ? 0x001 : 0x101, 0x1000]);
    const pek = decodeSevCert(c.pek);
    t.same([pek.sigs[0].usage, pek.sigs[1].usage], [0x1001, 0x1004], 'PEK: OCA in slot 1, CEK in slot 2');
    t.equal(decodeSevCert(c.pdh).algo, 0x003, 'PDH is ECDH');
  });

  t.test(`${gen}: the chain verifies; each flipped byte is rejected`, async (t) => {
    const c = chain(gen);
    const r = verifyChain(c);
    t.ok(r.ok, 'verifies');
    if (r.ok) t.ok(encodeSevCert(r.pdh).equals(c.pdh), 'returns the PDH');
    const flips: [keyof ChainBlobs, number, string][] = [
      ['ark', 0x100, 'ARK self-signature'], ['ask', 0x300, 'ARK → ASK'], ['cek', 0x20, 'ASK → CEK'],
      ['oca', 0x20, 'OCA self-signature'], ['pek', 0x20, 'OCA → PEK'], ['pdh', 0x20, 'PEK → PDH'],
      ['pek', 0x630, 'CEK → PEK'], ['pdh', 0x420, 'PEK → PDH'],
    ];
    for (const [k, at, step] of flips) {
      const bad = { ...c, [k]: Buffer.from(c[k]) };
      bad[k][at]! ^= 0x01;
      const res = verifyChain(bad);
      t.notOk(res.ok, `${k}[0x${at.toString(16)}] flipped`);
      if (!res.ok) t.equal(res.step, step, `fails at ${step}: ${res.reason}`);
    }
  });
}

t.test('swapped certificates and a foreign ASK are rejected with a reason', async (t) => {
  const n = chain('naples');
  const r = chain('rome');
  const swapped = verifyChain({ ...n, pek: n.oca, oca: n.pek });
  t.notOk(swapped.ok);
  if (!swapped.ok) t.match(swapped.reason, /usage 0x1002 \(PEK\) where OCA/);
  const foreign = verifyChain({ ...n, ark: r.ark, ask: r.ask });
  t.notOk(foreign.ok);
  if (!foreign.ok) t.equal(foreign.step, 'ASK → CEK', 'the Rome ASK does not verify the Naples CEK');
  // Reversed pairs.
  const nCek = decodeSevCert(n.cek);
  t.notOk(isSignedBy(n.cek, nCek, askSigner(decodeAmdCert(r.ask).cert)));
  const pek = decodeSevCert(n.pek);
  const pdh = decodeSevCert(n.pdh);
  t.notOk(isSignedBy(n.pek, pek, sevCertSigner(pdh)), 'PDH does not sign the PEK');
  t.notOk(amdCertSignedBy(decodeAmdCert(n.ark).cert, decodeAmdCert(n.ask).cert), 'ASK does not sign the ARK');
  // Slots swapped inside the PEK: still verifies (either slot may carry a signature).
  const pekSwapped: SevCert = { ...pek, sigs: [pek.sigs[1], pek.sigs[0]] };
  t.ok(verifyChain({ ...n, pek: encodeSevCert(pekSwapped) }).ok, 'slot order does not matter');
});

t.test('the truncated Naples ARK as once published is rejected cleanly', async (t) => {
  const trunc = readFileSync(`${F}/amd-roots/naples/ark.cert.truncated-as-once-published`);
  t.throws(() => decodeAmdCert(trunc), /truncated: 576 of 832 bytes/);
  const r = verifyChain({ ...chain('naples'), ark: trunc });
  t.notOk(r.ok);
  if (!r.ok) t.equal(r.step, 'ARK');
});

t.test('ASK ‖ ARK splits', async (t) => {
  const r = chain('rome');
  const { ask, ark } = splitAskArk(Buffer.concat([r.ask, r.ark]));
  t.ok(ask.equals(r.ask) && ark.equals(r.ark));
  t.throws(() => splitAskArk(Buffer.concat([r.ask, r.ark, Buffer.alloc(1)])), /trailing/);
});

t.test('independent check with @noble: the real PEK signs the real PDH', async (t) => {
  const c = chain('rome');
  const pek = decodeSevCert(c.pek);
  const pdh = decodeSevCert(c.pdh);
  if (pek.pubKey.kind !== 'ec') throw new Error('PEK is EC');
  const be = (le: Buffer) => Buffer.from(le.subarray(0, 48)).reverse();
  const pub = Buffer.concat([Buffer.from([4]), be(pek.pubKey.qx), be(pek.pubKey.qy)]);
  const sig = Buffer.concat([be(pdh.sigs[0].sig.subarray(0, 72)), be(pdh.sigs[0].sig.subarray(72, 144))]);
  const digest = nobleSha256(c.pdh.subarray(0, SEV_CERT_BODY_SIZE));
  t.ok(p384.verify(sig, digest, pub, { prehash: false, lowS: false }), 'noble verifies what node:crypto verifies');
});
