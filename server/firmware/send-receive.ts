/**
 * Migration commands of the firmware (SEV API 55766, SEND_* and RECEIVE_*): SEND_START (target chain and
 * policy checks, fresh TEK′/TIK′ wrapped for the target's PDH), SEND_UPDATE_DATA,
 * SEND_FINISH, SEND_CANCEL on the source; RECEIVE_START, RECEIVE_UPDATE_DATA,
 * RECEIVE_FINISH on the target. Packet MAC: sevd's choice (context byte 0x02).
 */
import { randomBytes } from 'node:crypto';
import { FirmwareError, FwStatus, type SevCommand } from './status.js';
import { GState, transportKeys, type GuestFwContext } from './guest-contexts.js';
import type { GuestFirmware } from './guest-firmware.js';
import { Policy } from '../../abi/policy.js';
import {
  buildSession, decodePacketHeader, ecdhSecret, MAC_MIGRATION, macMatches, packetMac,
  PACKET_HEADER_SIZE, SESSION_SIZE, sessionKeys, unwrapSession, writePacketHeader,
} from '../../abi/launch-crypto.js';
import { freshIv } from './iv-pool.js';
import {
  CertFormatError, checkEcKey, decodeSevCert, isSignedBy, keyType, sevCertSigner, SEV_CERT_SIZE, Usage, type SevCert,
} from '../../abi/certs/sev-cert.js';
import { amdCertSignedBy, askSigner, decodeAmdCert, AMD_USAGE_ARK, AMD_USAGE_ASK } from '../../abi/certs/amd-cert.js';
import { splitAskArk } from '../../abi/certs/chain.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import { pageBatch, PageBatch, type CtrItem } from '../memory/bulk/page-batch.js';
import type { OutBuf } from './platform.js';

const PAGE = 4096;

const fail = (cmd: SevCommand, status: number, lengths?: Record<string, number>): never => {
  throw new FirmwareError(cmd, status, lengths);
};

function cert(cmd: SevCommand, raw: Uint8Array, usage: number): SevCert {
  try {
    const c = decodeSevCert(raw);
    if (c.usage !== usage) fail(cmd, FwStatus.INVALID_CERTIFICATE);
    checkEcKey(c);
    return c;
  } catch (e) {
    if (e instanceof CertFormatError) return fail(cmd, FwStatus.INVALID_CERTIFICATE);
    throw e;
  }
}

/** One SEND_UPDATE_DATA of a batch: the guest range and the caller's header and transport buffers. */
export interface OutgoingPacket {
  gpa: number;
  len: number;
  /** Receives FLAGS ‖ IV ‖ MAC (at least 52 bytes). */
  header: Uint8Array;
  /** Receives the ciphertext (at least `len` bytes). */
  trans: Uint8Array;
}

/** One RECEIVE_UPDATE_DATA of a batch. */
export interface IncomingPacket {
  gpa: number;
  header: Uint8Array;
  trans: Uint8Array;
}

/** The guest range [gpa, gpa+len) must lie inside one page (sevd's choice, mirroring KVM). */
const insidePage = (gpa: number, len: number) => gpa % 16 === 0 && Math.floor(gpa / PAGE) === Math.floor((gpa + len - 1) / PAGE);

export interface SendStartInput {
  pdh: Uint8Array;
  platCerts: Uint8Array;
  amdCerts: Uint8Array;
}

export class SendReceive {
  constructor(private readonly fw: GuestFirmware) {}

  private get contexts() {
    return this.fw.contexts;
  }

  sendStart(handle: number, target: SendStartInput, sessionOut: OutBuf): { session: Buffer; policy: number } {
    const cmd = 'SEND_START';
    const ctx = this.contexts.check(cmd, handle);
    if (!sessionOut || sessionOut.len < SESSION_SIZE) fail(cmd, FwStatus.INVALID_LEN, { sessionLen: SESSION_SIZE });
    if (target.pdh.length !== SEV_CERT_SIZE || target.platCerts.length !== 3 * SEV_CERT_SIZE) fail(cmd, FwStatus.INVALID_LEN);
    const policy = ctx.policy;
    if (policy & Policy.NOSEND) fail(cmd, FwStatus.POLICY_FAILURE);
    const part = (i: number) => target.platCerts.subarray(i * SEV_CERT_SIZE, (i + 1) * SEV_CERT_SIZE);
    const [pekRaw, ocaRaw, cekRaw] = [part(0), part(1), part(2)];
    const pdh = cert(cmd, target.pdh, Usage.PDH);
    if (keyType(pdh.algo) !== 3) fail(cmd, FwStatus.INVALID_CERTIFICATE);
    const pek = cert(cmd, pekRaw, Usage.PEK);
    const oca = cert(cmd, ocaRaw, Usage.OCA);
    const cek = cert(cmd, cekRaw, Usage.CEK);
    let amd: { ask: ReturnType<typeof decodeAmdCert>['cert']; ark: ReturnType<typeof decodeAmdCert>['cert'] } | undefined;
    if (policy & Policy.SEV) {
      try {
        const split = splitAskArk(target.amdCerts);
        amd = { ask: decodeAmdCert(split.ask).cert, ark: decodeAmdCert(split.ark).cert };
      } catch (e) {
        if (e instanceof CertFormatError) fail(cmd, FwStatus.INVALID_CERTIFICATE);
        throw e;
      }
      if (amd!.ask.keyUsage !== AMD_USAGE_ASK || amd!.ark.keyUsage !== AMD_USAGE_ARK) fail(cmd, FwStatus.INVALID_CERTIFICATE);
    }
    if (!isSignedBy(target.pdh, pdh, sevCertSigner(pek))) fail(cmd, FwStatus.BAD_SIGNATURE);
    if (!isSignedBy(pekRaw, pek, sevCertSigner(oca))) fail(cmd, FwStatus.BAD_SIGNATURE);
    if (!isSignedBy(pekRaw, pek, sevCertSigner(cek))) fail(cmd, FwStatus.BAD_SIGNATURE);
    if (amd) {
      const ok = isSignedBy(cekRaw, cek, askSigner(amd.ask)) && amdCertSignedBy(amd.ask, amd.ark) && amdCertSignedBy(amd.ark, amd.ark);
      if (!ok) fail(cmd, FwStatus.BAD_SIGNATURE);
    }
    if (policy & Policy.DOMAIN) {
      const mine = decodeSevCert(this.fw.platform.certificates().oca).pubKey;
      const theirs = oca.pubKey;
      const same = mine.kind === 'ec' && theirs.kind === 'ec' && mine.qx.equals(theirs.qx) && mine.qy.equals(theirs.qy);
      if (!same) fail(cmd, FwStatus.POLICY_FAILURE);
    }
    const minMajor = (policy >>> 16) & 0xff;
    const minMinor = (policy >>> 24) & 0xff;
    if (pek.apiMajor < minMajor || (pek.apiMajor === minMajor && pek.apiMinor < minMinor)) fail(cmd, FwStatus.POLICY_FAILURE);
    const tek = randomBytes(16);
    const tik = randomBytes(16);
    const nonce = randomBytes(16);
    const keys = sessionKeys(ecdhSecret(this.fw.platform.pdhPrivateKey(), this.fw.peerDhKey(cmd, target.pdh)), nonce);
    const session = buildSession(keys, tek, tik, nonce, randomBytes(16), policy);
    ctx.transport = transportKeys(tek, tik);
    ctx.state = GState.SUPDATE;
    return { session, policy };
  }

  /** One page (or part of one) as a transport packet: header ‖ ciphertext under TEK′. */
  sendUpdateData(handle: number, mem: GuestMemory, gpa: number, len: number, hdrOut: OutBuf, transOut: OutBuf): { header: Buffer; trans: Buffer } {
    // Buffers no larger than the caller offered: a short one is the length query (INVALID_LEN).
    const header = Buffer.alloc(Math.min(hdrOut?.len ?? 0, PACKET_HEADER_SIZE));
    const trans = Buffer.alloc(Math.max(0, Math.min(transOut?.len ?? 0, len)));
    this.sendUpdateDataPages(handle, mem, [{ gpa, len, header, trans }]);
    return { header, trans };
  }

  /**
   * SEND_UPDATE_DATA for each packet in order, as separate commands would produce them (a
   * fresh IV and MAC each); the page crypto of up to PageBatch.CAPACITY packets is batched.
   * A refused packet refuses the call before any output is written.
   */
  sendUpdateDataPages(handle: number, mem: GuestMemory, packets: readonly OutgoingPacket[]): void {
    const cmd = 'SEND_UPDATE_DATA';
    const ctx = this.contexts.check(cmd, handle, { needsActive: true });
    for (const p of packets) {
      if (p.header.length < PACKET_HEADER_SIZE || p.trans.length < p.len || p.len === 0) fail(cmd, FwStatus.INVALID_LEN, { hdrLen: PACKET_HEADER_SIZE, transLen: p.len || PAGE });
      if (p.len % 16 !== 0) fail(cmd, FwStatus.INVALID_LEN);
      if (!insidePage(p.gpa, p.len) || !mem.regionOf(p.gpa, p.len)) fail(cmd, FwStatus.INVALID_ADDRESS);
    }
    this.fw.bound(cmd, ctx, mem);
    const t = ctx.transport!;
    const batch = pageBatch();
    for (let at = 0; at < packets.length; at += PageBatch.CAPACITY) {
      const group = packets.slice(at, at + PageBatch.CAPACITY);
      mem.guestReadPagesInto(batch, group.map((p) => Math.floor(p.gpa / PAGE)));
      const items: CtrItem[] = group.map((p, slot) => ({ slot, off: p.gpa % PAGE, len: p.len, iv: freshIv() }));
      batch.ctr(t.ctr, items);
      group.forEach((p, j) => {
        const { slot, off, len, iv } = items[j]!;
        const ciphertext = batch.slot(slot).subarray(off, off + len);
        p.trans.set(ciphertext);
        writePacketHeader(p.header, { flags: 0, iv, mac: packetMac(MAC_MIGRATION, t.tik, { flags: 0, iv }, len, ciphertext) });
      });
    }
  }

  sendFinish(handle: number): void {
    const ctx = this.contexts.check('SEND_FINISH', handle);
    ctx.state = GState.SENT;
    ctx.transport = null;
  }

  sendCancel(handle: number): void {
    const ctx = this.contexts.check('SEND_CANCEL', handle);
    ctx.state = GState.RUNNING;
    ctx.transport = null;
  }

  receiveStart(a: { handle: number; policy: number; pdh: Uint8Array; session: Uint8Array }): number {
    const cmd = 'RECEIVE_START';
    this.fw.platform.require(cmd, ['INIT', 'WORKING']);
    if (a.pdh.length !== SEV_CERT_SIZE || a.session.length !== SESSION_SIZE) fail(cmd, FwStatus.INVALID_LEN);
    this.fw.checkPolicy(cmd, a.policy);
    const vek = this.fw.sharedVek(cmd, a.handle, a.policy);
    const keys = sessionKeys(ecdhSecret(this.fw.platform.pdhPrivateKey(), this.fw.peerDhKey(cmd, a.pdh)), a.session.subarray(0, 16));
    const tk = unwrapSession(keys, a.session, a.policy) ?? fail(cmd, FwStatus.BAD_MEASUREMENT);
    const ctx = this.contexts.create(a.policy, vek, GState.RUPDATE);
    ctx.transport = transportKeys(Buffer.from(tk.tek), Buffer.from(tk.tik));
    ctx.launchDigest = Buffer.alloc(32); // no launch on this platform (sevd's choice, §8)
    return ctx.handle;
  }

  receiveUpdateData(handle: number, hdr: Uint8Array, mem: GuestMemory, gpa: number, trans: Uint8Array): void {
    this.receiveUpdateDataPages(handle, mem, [{ gpa, header: hdr, trans }]);
  }

  /**
   * RECEIVE_UPDATE_DATA for each packet in order. Packets are checked (lengths, address,
   * flags, MAC) in order; the ones before a refused packet are applied, as separate commands
   * would have been, then the refusal is thrown.
   */
  receiveUpdateDataPages(handle: number, mem: GuestMemory, packets: readonly IncomingPacket[]): void {
    const cmd = 'RECEIVE_UPDATE_DATA';
    const ctx = this.contexts.check(cmd, handle, { needsActive: true });
    let refusal: FirmwareError | null = null;
    let ok = 0;
    try {
      for (; ok < packets.length; ok++) this.checkIncoming(ctx, mem, packets[ok]!);
    } catch (e) {
      if (!(e instanceof FirmwareError)) throw e;
      refusal = e;
    }
    for (let at = 0; at < ok; at += PageBatch.CAPACITY) this.applyIncoming(ctx, mem, packets.slice(at, Math.min(ok, at + PageBatch.CAPACITY)));
    if (refusal) throw refusal;
  }

  private checkIncoming(ctx: GuestFwContext, mem: GuestMemory, p: IncomingPacket): void {
    const cmd = 'RECEIVE_UPDATE_DATA';
    if (p.header.length !== PACKET_HEADER_SIZE) fail(cmd, FwStatus.INVALID_LEN);
    if (p.trans.length === 0 || p.trans.length % 16 !== 0) fail(cmd, FwStatus.INVALID_LEN);
    if (!insidePage(p.gpa, p.trans.length) || !mem.regionOf(p.gpa, p.trans.length)) fail(cmd, FwStatus.INVALID_ADDRESS);
    this.fw.bound(cmd, ctx, mem);
    const h = decodePacketHeader(p.header);
    this.fw.checkFlags(cmd, h.flags);
    if (!macMatches(packetMac(MAC_MIGRATION, ctx.transport!.tik, h, p.trans.length, p.trans), h.mac)) fail(cmd, FwStatus.BAD_MEASUREMENT);
  }

  /** Decrypts checked packets with TEK′ (one batch) and writes the plaintext privately, in order. */
  private applyIncoming(ctx: GuestFwContext, mem: GuestMemory, group: readonly IncomingPacket[]): void {
    const batch = pageBatch();
    const items: CtrItem[] = group.map((p, slot) => {
      const off = p.gpa % PAGE;
      batch.slot(slot).set(p.trans, off);
      return { slot, off, len: p.trans.length, iv: decodePacketHeader(p.header).iv };
    });
    batch.ctr(ctx.transport!.ctr, items);
    // Whole pages go through the batched XTS; a partial page is a read-modify-write, so the
    // whole pages before it are written first (packets apply in stream order).
    let pfns: number[] = [];
    let slots: number[] = [];
    const flush = () => {
      mem.guestWritePagesFrom(batch, pfns, slots);
      pfns = [];
      slots = [];
    };
    for (const it of items) {
      const p = group[it.slot]!;
      if (it.len === PAGE) {
        pfns.push(p.gpa / PAGE);
        slots.push(it.slot);
      } else {
        flush();
        mem.guestWrite(p.gpa, batch.slot(it.slot).subarray(it.off, it.off + it.len));
      }
    }
    flush();
  }

  receiveFinish(handle: number): void {
    const ctx = this.contexts.check('RECEIVE_FINISH', handle);
    ctx.state = GState.RUNNING;
    ctx.transport = null;
  }
}
