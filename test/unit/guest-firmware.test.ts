/** The guest side of the firmware: state table, ASIDs, policy, lengths, flags, debug, memory views. */
import t from 'tap';
import { fwStatus } from '../helpers/fw-status.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Platform } from '../../server/firmware/platform.js';
import { GuestFirmware } from '../../server/firmware/guest-firmware.js';
import { FwStatus } from '../../server/firmware/status.js';
import { MemoryController } from '../../server/memory/memory-controller.js';
import { GuestMemory } from '../../server/memory/guest-memory.js';
import { machineLayout } from '../../server/guest/layout.js';

function setup(api = { apiMajor: 1, apiMinor: 55 }) {
  const platform = new Platform({ generation: 'milan', ...api, build: 21, seed: null, stateDir: mkdtempSync(join(tmpdir(), 'sevd-gfw-')) });
  platform.init();
  const mc = new MemoryController();
  const fw = new GuestFirmware(platform, mc, { maxAsid: 4, minSevAsid: 2 });
  const mem = () => new GuestMemory(machineLayout(16 << 20, 0), mc);
  return { platform, mc, fw, mem };
}


function launched(s: ReturnType<typeof setup>, policy = 0, asid = 2) {
  const h = s.fw.launchStart({ handle: 0, policy, godh: null, session: null });
  const m = s.mem();
  s.fw.activate(h, asid);
  m.asid = asid;
  m.setDefaultPrivate();
  return { h, m };
}

t.test('state table and transitions', async (t) => {
  const s = setup();
  const { h, m } = launched(s);
  t.equal(s.platform.platformState, 'WORKING');
  t.equal(fwStatus(() => s.fw.launchSecret(h, Buffer.alloc(52), m, 0, 16, Buffer.alloc(16))), FwStatus.INVALID_GUEST_STATE, 'LAUNCH_SECRET in LUPDATE');
  t.equal(fwStatus(() => s.fw.attestation(h, Buffer.alloc(16), { len: 208 })), FwStatus.INVALID_GUEST_STATE, 'ATTESTATION in LUPDATE');
  t.equal(fwStatus(() => s.fw.launchFinish(99)), FwStatus.INVALID_GUEST, 'unknown handle');
  t.equal(fwStatus(() => s.fw.launchUpdateData(h, m, 8, 16)), FwStatus.INVALID_ADDRESS, 'misaligned address');
  t.equal(fwStatus(() => s.fw.launchUpdateData(h, m, 0, 15)), FwStatus.INVALID_LEN, 'misaligned length');
  t.equal(fwStatus(() => s.fw.launchUpdateData(h, m, 0, 0)), FwStatus.INVALID_LEN, 'zero length');
  t.equal(fwStatus(() => s.fw.launchMeasure(h, { len: 47 })), FwStatus.INVALID_LEN);
  t.equal(s.fw.guestStatus(h).state, 1, 'length query changed nothing');
  s.fw.launchMeasure(h, { len: 48 });
  t.same(s.fw.guestStatus(h), { policy: 0, asid: 2, state: 2 });
  const hdr = Buffer.alloc(52);
  t.equal(fwStatus(() => s.fw.launchSecret(h, hdr.subarray(0, 51), m, 0, 16, Buffer.alloc(16))), FwStatus.INVALID_LEN);
  t.equal(fwStatus(() => s.fw.launchSecret(h, hdr, m, 0, 32, Buffer.alloc(16))), FwStatus.INVALID_LEN, 'guest length ≠ transport length');
  hdr.writeUInt32LE(1, 0);
  t.equal(fwStatus(() => s.fw.launchSecret(h, hdr, m, 0, 16, Buffer.alloc(16))), FwStatus.UNSUPPORTED, 'COMPRESSED');
  hdr.writeUInt32LE(2, 0);
  t.equal(fwStatus(() => s.fw.launchSecret(h, hdr, m, 0, 16, Buffer.alloc(16))), FwStatus.INVALID_PARAM, 'reserved flag');
  hdr.writeUInt32LE(0, 0);
  t.equal(fwStatus(() => s.fw.launchSecret(h, hdr, m, 0, 16, Buffer.alloc(16))), FwStatus.BAD_MEASUREMENT, 'MAC');
  t.equal(s.fw.attestation(h, Buffer.alloc(16), { len: 208 }).length, 208);
  s.fw.launchFinish(h);
  t.equal(s.fw.guestStatus(h).state, 3);
  t.equal(fwStatus(() => s.fw.decommission(h)), FwStatus.ACTIVE, 'DECOMMISSION of an active guest');
  s.fw.deactivate(h);
  s.fw.decommission(h);
  t.equal(fwStatus(() => s.fw.guestStatus(h)), FwStatus.INVALID_GUEST);
  t.equal(s.platform.platformState, 'INIT');
});

t.test('ASIDs: range, ownership, DF_FLUSH', async (t) => {
  const s = setup();
  const a = s.fw.launchStart({ handle: 0, policy: 0, godh: null, session: null });
  const b = s.fw.launchStart({ handle: 0, policy: 0, godh: null, session: null });
  t.equal(fwStatus(() => s.fw.activate(a, 0)), FwStatus.INVALID_ASID);
  t.equal(fwStatus(() => s.fw.activate(a, 1)), FwStatus.INVALID_ASID, 'below minSevAsid');
  t.equal(fwStatus(() => s.fw.activate(a, 5)), FwStatus.INVALID_ASID, 'above maxAsid');
  s.fw.activate(a, 2);
  t.equal(fwStatus(() => s.fw.activate(b, 2)), FwStatus.ASID_OWNED);
  const shared = s.fw.launchStart({ handle: a, policy: 0, godh: null, session: null });
  t.equal(fwStatus(() => s.fw.activate(shared, 2)), 'ok', 'a context sharing the VEK may use the ASID');
  s.fw.deactivate(shared);
  s.fw.deactivate(a);
  t.equal(fwStatus(() => s.fw.activate(b, 2)), FwStatus.DFFLUSH_REQUIRED);
  s.fw.dfFlush();
  t.equal(fwStatus(() => s.fw.activate(b, 2)), 'ok');
  t.equal(fwStatus(() => s.fw.launchStart({ handle: 77, policy: 0, godh: null, session: null })), FwStatus.INVALID_GUEST);
  const noks = s.fw.launchStart({ handle: 0, policy: 2, godh: null, session: null });
  t.equal(fwStatus(() => s.fw.launchStart({ handle: noks, policy: 0, godh: null, session: null })), FwStatus.POLICY_FAILURE, 'NOKS');
  t.equal(fwStatus(() => s.fw.launchStart({ handle: 0, policy: 0, godh: Buffer.alloc(2084), session: null })), FwStatus.INVALID_LEN, 'GODH without session');
  t.equal(fwStatus(() => s.fw.launchStart({ handle: 0, policy: 0, godh: Buffer.alloc(2084), session: Buffer.alloc(128) })), FwStatus.INVALID_CERTIFICATE, 'malformed GODH');
});

t.test('debug: refused under NODBG, allowed otherwise; 16-byte granularity', async (t) => {
  const s = setup();
  const nodbg = launched(s, 1, 2);
  t.equal(fwStatus(() => s.fw.dbgDecrypt(nodbg.h, nodbg.m, 0, 16)), FwStatus.POLICY_FAILURE);
  const dbg = launched(s, 0, 3);
  dbg.m.guestWrite(0x1000, Buffer.from('secret plaintext'));
  t.equal(s.fw.dbgDecrypt(dbg.h, dbg.m, 0x1000, 16).toString(), 'secret plaintext');
  t.notOk(dbg.m.read(0x1000, 16).toString() === 'secret plaintext', 'host view is ciphertext');
  t.equal(fwStatus(() => s.fw.dbgDecrypt(dbg.h, dbg.m, 0x1008, 16)), FwStatus.INVALID_ADDRESS);
  s.fw.dbgEncrypt(dbg.h, dbg.m, 0x2000, Buffer.from('0123456789abcdef'));
  t.equal(dbg.m.guestRead(0x2000, 16).toString(), '0123456789abcdef');
});

t.test('memory views: private and shared pages', async (t) => {
  const s = setup();
  const { m } = launched(s, 0, 2);
  t.ok(m.guestRead(0x5000, 16).equals(Buffer.alloc(16)), 'untouched reads as zeros');
  m.guestWrite(0x5ff8, Buffer.from('across a page boundary'));
  t.equal(m.guestRead(0x5ff8, 22).toString(), 'across a page boundary');
  t.notOk(m.read(0x5ff8, 22).toString() === 'across a page boundary');
  m.setPrivate(0x7000, 0x1000, false);
  m.guestWrite(0x7000, Buffer.from('shared bytes'));
  t.equal(m.read(0x7000, 12).toString(), 'shared bytes', 'shared pages are plaintext to the host');
  m.setPrivate(0x7000, 0x1000, true);
  t.notOk(m.guestRead(0x7000, 12).toString() === 'shared bytes', 'flipping the C-bit does not transform stored bytes');
  t.equal(s.mc.encryptPage(2, m.spaOf(5), Buffer.alloc(4096)).length, 4096);
  const other = launched(s, 0, 3).m;
  t.not(other.spaBase, m.spaBase, 'each guest has its own SPA window');
});

t.test('LAUNCH_UPDATE_DATA over many pages (helper thread): measured plaintext, guest view intact', async (t) => {
  const s = setup();
  const { h, m } = launched(s, 0, 2);
  const { createHash, randomBytes } = await import('node:crypto');
  const data = randomBytes(300 * 4096 + 512);
  m.write(0x10000, data);
  const len = data.length - (data.length % 16);
  s.fw.launchUpdateData(h, m, 0x10000, len);
  t.ok(m.guestRead(0x10000, len).equals(data.subarray(0, len)), 'the guest reads its plaintext back');
  t.notOk(m.read(0x10000, 4096).equals(data.subarray(0, 4096)), 'the host sees ciphertext');
  const blob = s.fw.launchMeasure(h, { len: 48 });
  const ctx = s.fw.contexts.peek(h)!;
  t.ok(ctx.launchDigest!.equals(createHash('sha256').update(data.subarray(0, len)).digest()), 'LD is the SHA-256 of the plaintext');
  t.equal(blob.length, 48);
});

t.test('ATTESTATION needs API 0.23', async (t) => {
  const s = setup({ apiMajor: 0, apiMinor: 22 });
  const { h } = launched(s);
  s.fw.launchMeasure(h, { len: 48 });
  t.equal(fwStatus(() => s.fw.attestation(h, Buffer.alloc(16), { len: 208 })), FwStatus.INVALID_COMMAND);
});
