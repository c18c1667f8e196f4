/**
 * The guest side of the emulated SEV firmware (SEV API 55766, guest management: LAUNCH_*, ATTESTATION, DBG_*): launch with the real
 * session cryptography, measurement, launch secret, attestation, debug, and the context
 * lifecycle (ACTIVATE / DEACTIVATE / DECOMMISSION / GUEST_STATUS). Guest memory is touched
 * only through the memory controller, with the key of the context's ASID.
 */
import { randomBytes, timingSafeEqual, type KeyObject } from 'node:crypto';
import { FirmwareError, FwStatus, type SevCommand } from './status.js';
import type { Platform } from './platform.js';
import { ContextTable, GState, type GStateCode, type GuestFwContext } from './guest-contexts.js';
import {
  aes128ctr, decodePacketHeader, ecdhSecret, launchMeasure, MAC_LAUNCH_SECRET, macMatches, packetMac,
  PACKET_HEADER_SIZE, SESSION_SIZE, sessionKeys, unwrapSession,
} from '../../abi/launch-crypto.js';
import { Algo, CertFormatError, decodeSevCert, ecPublicKey, SEV_CERT_SIZE, Usage } from '../../abi/certs/sev-cert.js';
import { REPORT_SIZE, signReport } from '../../abi/attestation-report.js';
import type { MemoryController } from '../memory/memory-controller.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import type { OutBuf } from './platform.js';
import { VMSA_SIZE } from '../../abi/vmsa.js';

import { Policy } from '../../abi/policy.js';

/** The policy bits, for the firmware's own callers (the VMM and KVM read them from abi/). */
export { Policy };
const POLICY_RESERVED = 0xffc0;

export interface AsidConfig {
  /** CPUID 0x8000001F ECX: the highest ASID. */
  maxAsid: number;
  /** CPUID 0x8000001F EDX: the lowest ASID an SEV (non-ES) guest may use. */
  minSevAsid: number;
}

const fail = (cmd: SevCommand, status: number, lengths?: Record<string, number>): never => {
  throw new FirmwareError(cmd, status, lengths);
};

export class GuestFirmware {
  readonly contexts: ContextTable;

  constructor(readonly platform: Platform, private readonly mc: MemoryController, readonly asids: AsidConfig) {
    this.contexts = new ContextTable(platform);
    platform.onShutdown(() => {
      for (const asid of this.contexts.asidOwner.keys()) this.mc.removeKey(asid);
      this.contexts.clear();
    });
  }

  private apiAtLeast(major: number, minor: number): boolean {
    const a = this.platform.api;
    return a.major > major || (a.major === major && a.minor >= minor);
  }

  /** Policy rules shared by LAUNCH_START and RECEIVE_START (§4). */
  checkPolicy(cmd: SevCommand, policy: number): void {
    if (policy & POLICY_RESERVED) fail(cmd, FwStatus.POLICY_FAILURE);
    const minMajor = (policy >>> 16) & 0xff;
    const minMinor = (policy >>> 24) & 0xff;
    if (!this.apiAtLeast(minMajor, minMinor)) fail(cmd, FwStatus.POLICY_FAILURE);
    if (policy & Policy.ES && !this.platform.status().es) fail(cmd, FwStatus.POLICY_FAILURE);
  }

  /** Key sharing through a nonzero handle (§5.3): returns the VEK to use. */
  sharedVek(cmd: SevCommand, handle: number, policy: number): Buffer {
    if (handle === 0) return newVek();
    const other = this.contexts.peek(handle) ?? fail(cmd, FwStatus.INVALID_GUEST);
    if (policy & Policy.NOKS || other.policy & Policy.NOKS) fail(cmd, FwStatus.POLICY_FAILURE);
    return other.vek;
  }

  /** A GODH or source PDH (§1.9): the ECDH public key, or INVALID_CERTIFICATE. */
  peerDhKey(cmd: SevCommand, raw: Uint8Array): KeyObject {
    try {
      const c = decodeSevCert(raw);
      if (c.usage !== Usage.PDH || (c.algo !== Algo.ECDH_SHA256 && c.algo !== Algo.ECDH_SHA384)) fail(cmd, FwStatus.INVALID_CERTIFICATE);
      return ecPublicKey(c.pubKey);
    } catch (e) {
      if (e instanceof CertFormatError) fail(cmd, FwStatus.INVALID_CERTIFICATE);
      throw e;
    }
  }

  // ---- launch ----

  launchStart(a: { handle: number; policy: number; godh: Uint8Array | null; session: Uint8Array | null }): number {
    const cmd = 'LAUNCH_START';
    this.platform.require(cmd, ['INIT', 'WORKING']);
    const withSession = a.godh !== null || a.session !== null;
    if (withSession && (a.godh?.length !== SEV_CERT_SIZE || a.session?.length !== SESSION_SIZE)) fail(cmd, FwStatus.INVALID_LEN);
    this.checkPolicy(cmd, a.policy);
    const vek = this.sharedVek(cmd, a.handle, a.policy);
    let tek: Buffer;
    let tik: Buffer;
    if (withSession) {
      const keys = sessionKeys(ecdhSecret(this.platform.pdhPrivateKey(), this.peerDhKey(cmd, a.godh!)), a.session!.subarray(0, 16));
      ({ tek, tik } = unwrapSession(keys, a.session!, a.policy) ?? fail(cmd, FwStatus.BAD_MEASUREMENT));
    } else {
      // No GODH and session: random keys, so nobody can verify or inject (sevd's choice).
      tek = randomBytes(16);
      tik = randomBytes(16);
    }
    const ctx = this.contexts.create(a.policy, vek, GState.LUPDATE);
    ctx.tek = Buffer.from(tek);
    ctx.tik = Buffer.from(tik);
    return ctx.handle;
  }

  /** Measures the plaintext, then encrypts it in place with the guest's key (§6.5). */
  launchUpdateData(handle: number, mem: GuestMemory, gpa: number, len: number): void {
    const cmd = 'LAUNCH_UPDATE_DATA';
    const ctx = this.contexts.check(cmd, handle, { needsActive: true });
    if (len === 0 || len % 16 !== 0) fail(cmd, FwStatus.INVALID_LEN);
    if (gpa % 16 !== 0 || !mem.regionOf(gpa, len)) fail(cmd, FwStatus.INVALID_ADDRESS);
    this.bound(cmd, ctx, mem);
    mem.encryptInPlace(gpa, len, (plain) => ctx.ld.update(plain));
  }

  /**
   * SEV-ES (§6.6): measures a vCPU's VMSA page after all data and encrypts it in place; the
   * page is the firmware's from now on (DBG_* refuse it).
   */
  launchUpdateVmsa(handle: number, mem: GuestMemory, gpa: number, len: number): void {
    const cmd = 'LAUNCH_UPDATE_VMSA';
    const ctx = this.contexts.check(cmd, handle, { needsActive: true });
    if (!(ctx.policy & Policy.ES)) fail(cmd, FwStatus.POLICY_FAILURE);
    if (len !== VMSA_SIZE) fail(cmd, FwStatus.INVALID_LEN);
    if (gpa % VMSA_SIZE !== 0 || !mem.regionOf(gpa, len)) fail(cmd, FwStatus.INVALID_ADDRESS);
    this.bound(cmd, ctx, mem);
    mem.encryptInPlace(gpa, len, (plain) => ctx.ld.update(plain));
    ctx.vmsaPfns.add(gpa / VMSA_SIZE);
  }

  launchMeasure(handle: number, out: OutBuf): Buffer {
    const cmd = 'LAUNCH_MEASURE';
    const ctx = this.contexts.check(cmd, handle);
    if (!out || out.len < 48) fail(cmd, FwStatus.INVALID_LEN, { len: 48 });
    const mnonce = randomBytes(16);
    ctx.launchDigest = ctx.ld.digest();
    const st = this.platform.status();
    ctx.measure = launchMeasure(ctx.tik, { apiMajor: st.apiMajor, apiMinor: st.apiMinor, build: st.build }, ctx.policy, ctx.launchDigest, mnonce);
    ctx.state = GState.LSECRET;
    return Buffer.concat([ctx.measure, mnonce]);
  }

  /** §6.8: MAC over the packet and the measurement, then a private write of the plaintext. */
  launchSecret(handle: number, hdr: Uint8Array, mem: GuestMemory, gpa: number, guestLen: number, trans: Uint8Array): void {
    const cmd = 'LAUNCH_SECRET';
    const ctx = this.contexts.check(cmd, handle, { needsActive: true });
    if (hdr.length !== PACKET_HEADER_SIZE) fail(cmd, FwStatus.INVALID_LEN);
    if (guestLen === 0 || trans.length === 0 || guestLen !== trans.length) fail(cmd, FwStatus.INVALID_LEN);
    if (!mem.regionOf(gpa, guestLen)) fail(cmd, FwStatus.INVALID_ADDRESS);
    this.bound(cmd, ctx, mem);
    const h = decodePacketHeader(hdr);
    this.checkFlags(cmd, h.flags);
    const measure = this.apiAtLeast(0, 17) ? ctx.measure! : undefined;
    if (!macMatches(packetMac(MAC_LAUNCH_SECRET, ctx.tik, h, guestLen, trans, measure), h.mac)) fail(cmd, FwStatus.BAD_MEASUREMENT);
    mem.guestWrite(gpa, aes128ctr(ctx.tek, h.iv, trans));
  }

  launchFinish(handle: number): void {
    this.contexts.check('LAUNCH_FINISH', handle).state = GState.RUNNING;
  }

  checkFlags(cmd: SevCommand, flags: number): void {
    if (flags & 1) fail(cmd, FwStatus.UNSUPPORTED);
    if (flags & ~1) fail(cmd, FwStatus.INVALID_PARAM);
  }

  /** The memory a command touches must be the one bound to the context's ASID. */
  bound(cmd: SevCommand, ctx: GuestFwContext, mem: GuestMemory): void {
    if (mem.asid !== ctx.asid) fail(cmd, FwStatus.INACTIVE);
  }

  // ---- lifecycle ----

  activate(handle: number, asid: number): void {
    const cmd = 'ACTIVATE';
    const ctx = this.contexts.check(cmd, handle);
    const { maxAsid, minSevAsid } = this.asids;
    const es = (ctx.policy & Policy.ES) !== 0;
    if (asid === 0 || asid > maxAsid || (es ? asid >= minSevAsid : asid < minSevAsid)) fail(cmd, FwStatus.INVALID_ASID);
    const owner = this.contexts.asidOwner.get(asid);
    if (owner !== undefined && owner !== handle) {
      const other = this.contexts.peek(owner);
      if (!other || !other.vek.equals(ctx.vek)) fail(cmd, FwStatus.ASID_OWNED);
    }
    if (this.contexts.dfFlushRequired.has(asid)) fail(cmd, FwStatus.DFFLUSH_REQUIRED);
    if (ctx.asid !== null && ctx.asid !== asid) this.unbind(ctx);
    ctx.asid = asid;
    this.contexts.asidOwner.set(asid, handle);
    this.mc.installKey(asid, ctx.vek);
  }

  deactivate(handle: number): void {
    const ctx = this.contexts.check('DEACTIVATE', handle);
    if (ctx.asid !== null) this.unbind(ctx);
  }

  private unbind(ctx: GuestFwContext): void {
    const asid = ctx.asid!;
    this.contexts.asidOwner.delete(asid);
    this.mc.removeKey(asid);
    this.contexts.dfFlushRequired.add(asid);
    ctx.asid = null;
  }

  decommission(handle: number): void {
    const ctx = this.contexts.check('DECOMMISSION', handle);
    if (ctx.asid !== null) fail('DECOMMISSION', FwStatus.ACTIVE);
    this.contexts.delete(ctx);
  }

  dfFlush(): void {
    this.platform.dfFlush();
    this.contexts.dfFlushRequired.clear();
  }

  guestStatus(handle: number): { policy: number; asid: number; state: GStateCode } {
    const ctx = this.contexts.check('GUEST_STATUS', handle);
    return { policy: ctx.policy, asid: ctx.asid ?? 0, state: ctx.state };
  }

  // ---- attestation and debug ----

  attestation(handle: number, mnonce: Uint8Array, out: OutBuf): Buffer {
    const cmd = 'ATTESTATION';
    if (!this.apiAtLeast(0, 23)) fail(cmd, FwStatus.INVALID_COMMAND);
    const ctx = this.contexts.check(cmd, handle);
    if (!out || out.len < REPORT_SIZE) fail(cmd, FwStatus.INVALID_LEN, { len: REPORT_SIZE });
    return signReport(mnonce, ctx.launchDigest ?? Buffer.alloc(32), ctx.policy, this.platform.pekPrivateKey());
  }

  private checkDebug(cmd: SevCommand, handle: number, mem: GuestMemory, a: number, b: number, len: number): void {
    const ctx = this.contexts.check(cmd, handle, { needsActive: true });
    if (ctx.policy & Policy.NODBG) fail(cmd, FwStatus.POLICY_FAILURE);
    if (len === 0 || len % 16 !== 0) fail(cmd, FwStatus.INVALID_LEN);
    if (a % 16 !== 0 || b % 16 !== 0) fail(cmd, FwStatus.INVALID_ADDRESS);
    for (let pfn = Math.floor(a / VMSA_SIZE); pfn * VMSA_SIZE < a + len; pfn++) {
      if (ctx.vmsaPfns.has(pfn)) fail(cmd, FwStatus.INVALID_PARAM);
    }
    this.bound(cmd, ctx, mem);
  }

  /** DBG_DECRYPT: guest memory at gpa read through the guest's key (host destination implied). */
  dbgDecrypt(handle: number, mem: GuestMemory, gpa: number, len: number): Buffer {
    this.checkDebug('DBG_DECRYPT', handle, mem, gpa, 0, len);
    return mem.guestRead(gpa, len);
  }

  dbgEncrypt(handle: number, mem: GuestMemory, gpa: number, data: Uint8Array): void {
    this.checkDebug('DBG_ENCRYPT', handle, mem, gpa, 0, data.length);
    mem.guestWrite(gpa, data);
  }
}

function newVek(): Buffer {
  // AES-XTS wants K1 ≠ K2.
  for (;;) {
    const k = randomBytes(32);
    if (!timingSafeEqual(k.subarray(0, 16), k.subarray(16))) return k;
  }
}
