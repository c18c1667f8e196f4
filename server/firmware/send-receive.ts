/**
 * Migration commands of the firmware (sev-firmware.md §11): SEND_START (target chain and
 * policy checks, fresh TEK′/TIK′ wrapped for the target's PDH), SEND_UPDATE_DATA,
 * SEND_FINISH, SEND_CANCEL on the source; RECEIVE_START, RECEIVE_UPDATE_DATA,
 * RECEIVE_FINISH on the target. Packet MAC: sevd's choice (context byte 0x02).
 */
import { randomBytes } from 'node:crypto';
import { FirmwareError, FwStatus, type SevCommand } from './status.js';
import { GState } from './guest-contexts.js';
import { Policy, type GuestFirmware } from './guest-firmware.js';
import {
  aes128ctr, buildSession, decodePacketHeader, freshIv, ecdhSecret, encodePacketHeader, MAC_MIGRATION, macMatches, packetMac,
  PACKET_HEADER_SIZE, SESSION_SIZE, sessionKeys, unwrapSession,
} from './crypto/launch-crypto.js';
import {
  CertFormatError, checkEcKey, decodeSevCert, isSignedBy, keyType, sevCertSigner, SEV_CERT_SIZE, Usage, type SevCert,
} from './certs/sev-cert.js';
import { amdCertSignedBy, askSigner, decodeAmdCert, AMD_USAGE_ARK, AMD_USAGE_ASK } from './certs/amd-cert.js';
import { splitAskArk } from './certs/chain.js';
import type { GuestMemory } from '../memory/guest-memory.js';
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
    ctx.transport = { tek, tik };
    ctx.state = GState.SUPDATE;
    return { session, policy };
  }

  /** One page (or part of one) as a transport packet: header ‖ ciphertext under TEK′. */
  sendUpdateData(handle: number, mem: GuestMemory, gpa: number, len: number, hdrOut: OutBuf, transOut: OutBuf): { header: Buffer; trans: Buffer } {
    const cmd = 'SEND_UPDATE_DATA';
    const ctx = this.contexts.check(cmd, handle, { needsActive: true });
    if (!hdrOut || hdrOut.len < PACKET_HEADER_SIZE || !transOut || transOut.len < len || len === 0) {
      fail(cmd, FwStatus.INVALID_LEN, { hdrLen: PACKET_HEADER_SIZE, transLen: len || PAGE });
    }
    if (len % 16 !== 0) fail(cmd, FwStatus.INVALID_LEN);
    if (gpa % 16 !== 0 || Math.floor(gpa / PAGE) !== Math.floor((gpa + len - 1) / PAGE) || !mem.regionOf(gpa, len)) fail(cmd, FwStatus.INVALID_ADDRESS);
    this.fw.bound(cmd, ctx, mem);
    const iv = freshIv();
    const plain = len === PAGE && gpa % PAGE === 0 ? mem.guestReadPage(gpa / PAGE) : mem.guestRead(gpa, len);
    const trans = aes128ctr(ctx.transport!.tek, iv, plain);
    const mac = packetMac(MAC_MIGRATION, ctx.transport!.tik, { flags: 0, iv }, len, trans);
    return { header: encodePacketHeader({ flags: 0, iv, mac }), trans };
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
    ctx.transport = { tek: Buffer.from(tk.tek), tik: Buffer.from(tk.tik) };
    ctx.launchDigest = Buffer.alloc(32); // no launch on this platform (sevd's choice, §8)
    return ctx.handle;
  }

  receiveUpdateData(handle: number, hdr: Uint8Array, mem: GuestMemory, gpa: number, trans: Uint8Array): void {
    const cmd = 'RECEIVE_UPDATE_DATA';
    const ctx = this.contexts.check(cmd, handle, { needsActive: true });
    if (hdr.length !== PACKET_HEADER_SIZE) fail(cmd, FwStatus.INVALID_LEN);
    if (trans.length === 0 || trans.length % 16 !== 0) fail(cmd, FwStatus.INVALID_LEN);
    if (gpa % 16 !== 0 || Math.floor(gpa / PAGE) !== Math.floor((gpa + trans.length - 1) / PAGE) || !mem.regionOf(gpa, trans.length)) {
      fail(cmd, FwStatus.INVALID_ADDRESS);
    }
    this.fw.bound(cmd, ctx, mem);
    const h = decodePacketHeader(hdr);
    this.fw.checkFlags(cmd, h.flags);
    if (!macMatches(packetMac(MAC_MIGRATION, ctx.transport!.tik, h, trans.length, trans), h.mac)) fail(cmd, FwStatus.BAD_MEASUREMENT);
    mem.guestWrite(gpa, aes128ctr(ctx.transport!.tek, h.iv, trans));
  }

  receiveFinish(handle: number): void {
    const ctx = this.contexts.check('RECEIVE_FINISH', handle);
    ctx.state = GState.RUNNING;
    ctx.transport = null;
  }
}
