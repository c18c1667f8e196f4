/** SEND_* / RECEIVE_* between two emulated platforms, the P2 vector and the failure rules. */
import t from 'tap';
import { fwStatus } from '../helpers/fw-status.js';
import { fwHost as host, receivingGuest, runningGuest, targetOf } from '../helpers/fw-hosts.js';
import { FwStatus } from '../../server/firmware/status.js';
import { aes128ctr, MAC_MIGRATION, packetMac } from '../../abi/launch-crypto.js';

t.test('P2: SEND_UPDATE_DATA MAC (sevd\'s choice)', async (t) => {
  const seq = (from: number, n: number) => Buffer.from(Array.from({ length: n }, (_, i) => (from + i) & 0xff));
  const page = Buffer.from(Array.from({ length: 4096 }, (_, i) => i % 256));
  const ct = aes128ctr(seq(0, 16), seq(0x60, 16), page);
  t.equal(ct.subarray(0, 16).toString('hex'), 'addf6af4a94c746fdb1307d65079be80');
  t.equal(packetMac(MAC_MIGRATION, seq(0x10, 16), { flags: 0, iv: seq(0x60, 16) }, 4096, ct).toString('hex'), 'e8978a8727065eff5db32d058548f8b67d8cbc6df85ddd123bf5e43b834ef63f');
});

t.test('a guest moves from A to B: plaintext kept, new key', async (t) => {
  const A = host();
  const B = host();
  const src = runningGuest(A, 0x0);
  const pattern = Buffer.from('migrating page content '.repeat(179).slice(0, 4096));
  src.m.guestWrite(0x3000, pattern);
  t.equal(fwStatus(() => A.sr.sendStart(src.handle, targetOf(B), null)), FwStatus.INVALID_LEN, 'session length query');
  const { session, policy } = A.sr.sendStart(src.handle, targetOf(B), { len: 128 });
  t.equal(A.fw.guestStatus(src.handle).state, 4, 'SUPDATE');
  t.equal(fwStatus(() => A.sr.sendUpdateData(src.handle, src.m, 0x3000, 4096, null, { len: 4096 })), FwStatus.INVALID_LEN);
  const pkt = A.sr.sendUpdateData(src.handle, src.m, 0x3000, 4096, { len: 52 }, { len: 4096 });
  t.notOk(pkt.trans.equals(pattern), 'the packet is encrypted');
  const dst = B.sr.receiveStart({ handle: 0, policy, pdh: A.platform.certificates().pdh, session });
  const dm = B.mem();
  B.fw.activate(dst, 1);
  dm.asid = 1;
  dm.setDefaultPrivate();
  const bad = Buffer.from(pkt.trans);
  bad[100] ^= 1;
  t.equal(fwStatus(() => B.sr.receiveUpdateData(dst, pkt.header, dm, 0x3000, bad)), FwStatus.BAD_MEASUREMENT, 'tampered packet');
  B.sr.receiveUpdateData(dst, pkt.header, dm, 0x3000, pkt.trans);
  B.sr.receiveFinish(dst);
  t.ok(dm.guestRead(0x3000, 4096).equals(pattern), 'B\'s guest reads the same plaintext');
  t.notOk(dm.read(0x3000, 4096).equals(src.m.read(0x3000, 4096)), 'stored under a different key');
  t.ok(B.fw.attestation(dst, Buffer.alloc(16), { len: 208 }).subarray(16, 48).equals(Buffer.alloc(32)), 'no launch digest on B');
  A.sr.sendFinish(src.handle);
  t.equal(A.fw.guestStatus(src.handle).state, 6, 'SENT');
  t.equal(fwStatus(() => A.fw.attestation(src.handle, Buffer.alloc(16), { len: 208 })), FwStatus.INVALID_GUEST_STATE);
  t.equal(fwStatus(() => A.fw.dbgDecrypt(src.handle, src.m, 0, 16)), FwStatus.INVALID_GUEST_STATE);
});

t.test('SEND_START policy and certificate rules; SEND_CANCEL', async (t) => {
  const A = host();
  const B = host();
  const nosend = runningGuest(A, 0x8, 1);
  t.equal(fwStatus(() => A.sr.sendStart(nosend.handle, targetOf(B), { len: 128 })), FwStatus.POLICY_FAILURE, 'NOSEND');
  const domain = runningGuest(A, 0x10, 2);
  t.equal(fwStatus(() => A.sr.sendStart(domain.handle, targetOf(B), { len: 128 })), FwStatus.POLICY_FAILURE, 'DOMAIN: other OCA');
  const sev = runningGuest(A, 0x20, 3);
  const rome = host('rome');
  t.equal(fwStatus(() => A.sr.sendStart(sev.handle, { ...targetOf(B), amdCerts: targetOf(rome).amdCerts }, { len: 128 })), FwStatus.BAD_SIGNATURE, 'SEV: CEK not signed by that ASK');
  t.equal(fwStatus(() => A.sr.sendStart(sev.handle, { ...targetOf(B), amdCerts: Buffer.alloc(10) }, { len: 128 })), FwStatus.INVALID_CERTIFICATE, 'SEV: no ASK ‖ ARK');
  const api = runningGuest(A, 0x32010000, 4); // minimum API 1.50
  t.equal(fwStatus(() => A.sr.sendStart(api.handle, targetOf(host('milan', 40)), { len: 128 })), FwStatus.POLICY_FAILURE, 'target PEK API 1.40 below the minimum');
  const plain = runningGuest(A, 0, 5);
  const broken = targetOf(B);
  broken.pdh = Buffer.from(broken.pdh);
  broken.pdh[0x430] ^= 1;
  t.equal(fwStatus(() => A.sr.sendStart(plain.handle, broken, { len: 128 })), FwStatus.BAD_SIGNATURE, 'PDH not signed by the PEK');
  t.equal(fwStatus(() => A.sr.sendStart(plain.handle, { ...targetOf(B), platCerts: Buffer.alloc(100) }, { len: 128 })), FwStatus.INVALID_LEN);
  t.equal(A.fw.guestStatus(plain.handle).state, 3, 'failures change nothing');
  t.equal(fwStatus(() => A.sr.sendStart(sev.handle, targetOf(B), { len: 128 })), 'ok', 'SEV with the right AMD chain');
  A.sr.sendCancel(sev.handle);
  t.equal(A.fw.guestStatus(sev.handle).state, 3, 'SEND_CANCEL: RUNNING again');
  const { session } = A.sr.sendStart(plain.handle, targetOf(B), { len: 128 });
  t.equal(fwStatus(() => B.sr.receiveStart({ handle: 0, policy: 1, pdh: A.platform.certificates().pdh, session })), FwStatus.BAD_MEASUREMENT, 'policy changed in transit');
  t.equal(fwStatus(() => host().sr.receiveStart({ handle: 0, policy: 0, pdh: A.platform.certificates().pdh, session })), FwStatus.BAD_MEASUREMENT, 'a session for another target');
});

t.test('batched SEND/RECEIVE_UPDATE_DATA: one command per packet, refusals stop in order', async (t) => {
  const A = host();
  const B = host();
  const src = runningGuest(A, 0x0);
  const pages = Array.from({ length: 20 }, (_, i) => Buffer.alloc(4096, i + 1));
  pages.forEach((p, i) => i !== 5 && src.m.guestWrite(0x10000 + i * 4096, p)); // page 5 never written: zeros
  pages[5] = Buffer.alloc(4096);
  const { session, policy } = A.sr.sendStart(src.handle, targetOf(B), { len: 128 });
  const out = pages.map((_, i) => ({ gpa: 0x10000 + i * 4096, len: 4096, header: Buffer.alloc(52), trans: Buffer.alloc(4096) }));
  A.sr.sendUpdateDataPages(src.handle, src.m, out);
  // Then the guest changes part of page 3 and that part is sent again as a partial packet.
  src.m.guestWrite(0x10000 + 3 * 4096 + 16, Buffer.alloc(64, 0xee));
  const partial = { gpa: 0x10000 + 3 * 4096 + 16, len: 64, header: Buffer.alloc(52), trans: Buffer.alloc(64) };
  A.sr.sendUpdateDataPages(src.handle, src.m, [partial]);
  out.push(partial);
  const ivs = new Set(out.map((p) => p.header.subarray(4, 20).toString('hex')));
  t.equal(ivs.size, out.length, 'a fresh IV per packet');
  t.notOk(out.some((p, i) => i < 20 && p.trans.equals(pages[i]!)), 'no plaintext in the packets');
  t.equal(fwStatus(() => A.sr.sendUpdateDataPages(src.handle, src.m, [out[0]!, { ...out[1]!, gpa: 0x10008 }])), FwStatus.INVALID_ADDRESS, 'a bad packet refuses the call');

  const { handle: dst, m: dm } = receivingGuest(B, A, { session, policy });
  const incoming = out.map((p) => ({ gpa: p.gpa, header: p.header, trans: Buffer.from(p.trans) }));
  incoming[7]!.trans[9] ^= 1;
  t.equal(fwStatus(() => B.sr.receiveUpdateDataPages(dst, dm, incoming)), FwStatus.BAD_MEASUREMENT, 'tampered packet 7');
  t.ok(dm.guestRead(0x10000, 7 * 4096).equals(Buffer.concat(pages.slice(0, 7))), 'packets 0-6 applied');
  t.ok(dm.read(0x10000 + 7 * 4096, 13 * 4096).equals(Buffer.alloc(13 * 4096)), 'packet 7 and later not applied');
  incoming[7]!.trans[9] ^= 1;
  B.sr.receiveUpdateDataPages(dst, dm, incoming.slice(7));
  pages[3]!.fill(0xee, 16, 80);
  t.ok(dm.guestRead(0x10000, 20 * 4096).equals(Buffer.concat(pages)), 'every page arrives, the partial packet applied after its page');
  t.notOk(dm.read(0x10000, 4096).equals(src.m.read(0x10000, 4096)), 'under B\'s key');
});
