/**
 * The SNP guest commands of the emulated Secure Processor (SNP ABI 56860, SNP_LAUNCH_*, MSG_REPORT_REQ and ATTESTATION_REPORT):
 * SNP_LAUNCH_START (policy checks, GOSVW), SNP_LAUNCH_UPDATE (every page type, the RMP,
 * the SHA-384 launch digest, the SECRETS page with fresh VMPCKs), SNP_LAUNCH_FINISH (ID
 * block, ID auth, author key, host data), SNP_GUEST_REQUEST (AES-256-GCM messages under the
 * VMPCKs with sequence numbers: reports signed with the VCEK, derived keys) and
 * SNP_DECOMMISSION. Guest pages are touched only through the memory controller with the
 * key of the context's ASID, as for SEV.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { FirmwareError, FwStatus, type SevCommand } from './status.js';
import type { Platform } from './platform.js';
import type { SnpPlatform } from './snp-platform.js';
import type { MemoryController } from '../memory/memory-controller.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import { SnpLaunchDigest, SnpPageType, type SnpPageTypeCode } from '../../abi/snp/launch-digest.js';
import { encodeSecretsPage, SECRETS_VERSION } from '../../abi/snp/secrets.js';
import { checkIdAuth, decodeIdBlock, ID_AUTH_SIZE, ID_BLOCK_SIZE } from '../../abi/snp/id-block.js';
import { encodeSnpReportBody } from '../../abi/snp/report.js';
import {
  decodeKeyRequest, decodeReportRequest, encodeKeyResponse, encodeReportResponse, MsgType, openGuestMessage, peekGuestMessage, sealGuestMessage, type KeyRequest,
} from '../../abi/snp/guest-msg.js';
import { HOST_SIGNATURE, signatureFms } from '../../abi/vmsa.js';
import { checkCpuidPage } from './snp-cpuid-check.js';
import { SnpPolicy } from '../../abi/policy.js';

/** The policy bits, for the firmware's own callers (the VMM and KVM read them from abi/). */
export { SnpPolicy };

/** Bits this firmware knows (21+ are newer features: CXL, AES-256-XTS, RAPL, ciphertext hiding, …). */
const KNOWN_POLICY = (1n << 21n) - 1n;
const PAGE = 4096;

const fail = (cmd: SevCommand, status: number): never => {
  throw new FirmwareError(cmd, status);
};

interface SnpContext {
  handle: number;
  policy: bigint;
  gosvw: Buffer;
  vek: Buffer;
  asid: number | null;
  state: 'launch' | 'running';
  ld: SnpLaunchDigest;
  /** The RMP's view of this guest: frames it owns (validated, measured or not). */
  rmp: Set<number>;
  vmpcks: [Buffer, Buffer, Buffer, Buffer];
  /** Per VMPCK: the last request sequence number accepted (0 before any). */
  seq: [bigint, bigint, bigint, bigint];
  measurement: Buffer;
  hostData: Buffer;
  idKeyDigest: Buffer;
  authorKeyDigest: Buffer;
  authorKeyEn: boolean;
  familyId: Buffer;
  imageId: Buffer;
  guestSvn: number;
  reportId: Buffer;
  vmrk: Buffer;
  launchTcb: bigint;
  vcekDisabled: boolean;
}

export interface SnpFinishArgs {
  idBlock: Buffer | null;
  idAuth: Buffer | null;
  authorKeyEn: boolean;
  hostData: Buffer;
  vcekDisabled: boolean;
}

export class SnpGuestFirmware {
  private readonly contexts = new Map<number, SnpContext>();
  private nextHandle = 0x1000; // apart from SEV handles, so a log never confuses the two

  constructor(private readonly platform: Platform, private readonly mc: MemoryController) {}

  private get snp(): SnpPlatform {
    return this.platform.snp!;
  }

  private ctx(cmd: SevCommand, handle: number, state?: SnpContext['state']): SnpContext {
    if (!this.platform.snp) fail(cmd, FwStatus.INVALID_COMMAND);
    const c = this.contexts.get(handle) ?? fail(cmd, FwStatus.INVALID_GUEST);
    if (state && c.state !== state) fail(cmd, FwStatus.INVALID_GUEST_STATE);
    return c;
  }

  get size(): number {
    return this.contexts.size;
  }

  has(handle: number): boolean {
    return this.contexts.has(handle);
  }

  /** SNP_LAUNCH_START: bit 17 must be set; no unknown bits; the ABI minimum at most this firmware's. */
  launchStart(a: { policy: bigint; gosvw: Buffer }): number {
    const cmd = 'SNP_LAUNCH_START';
    if (!this.platform.snp) fail(cmd, FwStatus.INVALID_COMMAND);
    const p = a.policy;
    if (!(p & SnpPolicy.RESERVED_ONE) || p & ~KNOWN_POLICY) fail(cmd, FwStatus.POLICY_FAILURE);
    const minor = Number(p & 0xffn);
    const major = Number((p >> 8n) & 0xffn);
    const api = this.platform.api;
    if (major > api.major || (major === api.major && minor > api.minor)) fail(cmd, FwStatus.POLICY_FAILURE);
    const handle = this.nextHandle++;
    this.contexts.set(handle, {
      handle, policy: p, gosvw: Buffer.from(a.gosvw), vek: newVek(), asid: null, state: 'launch', ld: new SnpLaunchDigest(), rmp: new Set(),
      vmpcks: [randomBytes(32), randomBytes(32), randomBytes(32), randomBytes(32)], seq: [0n, 0n, 0n, 0n],
      measurement: Buffer.alloc(48), hostData: Buffer.alloc(32), idKeyDigest: Buffer.alloc(48), authorKeyDigest: Buffer.alloc(48), authorKeyEn: false,
      familyId: Buffer.alloc(16), imageId: Buffer.alloc(16), guestSvn: 0, reportId: randomBytes(32), vmrk: randomBytes(48),
      launchTcb: this.snp.status().current, vcekDisabled: false,
    });
    this.platform.contextCreated();
    this.snp.guestCreated();
    return handle;
  }

  /** SNP_ACTIVATE: binds the guest's key to an ASID (KVM does it right after LAUNCH_START). */
  activate(handle: number, asid: number): void {
    const c = this.ctx('SNP_ACTIVATE', handle);
    c.asid = asid;
    this.mc.installKey(asid, c.vek);
  }

  /**
   * SNP_LAUNCH_UPDATE of whole pages of one type: each becomes guest-owned in the RMP,
   * is measured into the launch digest as its type says, and encrypted in place.
   */
  launchUpdate(handle: number, mem: GuestMemory, gpa: number, len: number, type: SnpPageTypeCode): void {
    const cmd = 'SNP_LAUNCH_UPDATE';
    const c = this.ctx(cmd, handle, 'launch');
    if (gpa % PAGE || len % PAGE || len === 0) fail(cmd, FwStatus.INVALID_PAGE_SIZE);
    if (!mem.regionOf(gpa, len)) fail(cmd, FwStatus.INVALID_ADDRESS);
    if (mem.asid !== c.asid || c.asid === null) fail(cmd, FwStatus.INACTIVE);
    for (let off = 0; off < len; off += PAGE) if (c.rmp.has((gpa + off) / PAGE)) fail(cmd, FwStatus.INVALID_PAGE_STATE);
    if (type === SnpPageType.CPUID) for (let off = 0; off < len; off += PAGE) this.checkCpuid(mem, gpa + off);
    for (let off = 0; off < len; off += PAGE) {
      const at = gpa + off;
      if (type === SnpPageType.ZERO) mem.write(at, Buffer.alloc(PAGE));
      if (type === SnpPageType.SECRETS) {
        mem.write(at, encodeSecretsPage({ version: SECRETS_VERSION, imiEnable: false, fms: HOST_SIGNATURE[this.platform.generation]!, gosvw: c.gosvw, vmpcks: c.vmpcks }));
      }
      const measured = type === SnpPageType.NORMAL || type === SnpPageType.VMSA;
      const page = measured ? Buffer.from(mem.read(at, PAGE)) : null;
      if (type === SnpPageType.VMSA) c.ld.vmsa(page!);
      else c.ld.pages(type, at, page, PAGE);
      mem.encryptInPlace(at, PAGE);
      c.rmp.add(at / PAGE);
    }
  }

  /** A CPUID page asking for more than the chip allows: the corrected page goes back to the host, the command fails. */
  private checkCpuid(mem: GuestMemory, gpa: number): void {
    const r = checkCpuidPage(this.platform.generation, mem.read(gpa, PAGE));
    if (r.ok) return;
    if (r.corrected) mem.write(gpa, r.corrected);
    fail('SNP_LAUNCH_UPDATE', FwStatus.INVALID_PARAM);
  }

  /** SNP_LAUNCH_FINISH: the ID block must name this digest and policy, signed by its ID key (and author key). */
  launchFinish(handle: number, a: SnpFinishArgs): void {
    const cmd = 'SNP_LAUNCH_FINISH';
    const c = this.ctx(cmd, handle, 'launch');
    const ld = c.ld.digest;
    if (a.idBlock) {
      if (a.idBlock.length !== ID_BLOCK_SIZE || !a.idAuth || a.idAuth.length > ID_AUTH_SIZE) fail(cmd, FwStatus.INVALID_PARAM);
      const block = decodeIdBlock(a.idBlock);
      if (!timingSafeEqual(block.ld, ld)) fail(cmd, FwStatus.BAD_MEASUREMENT);
      if (block.policy !== c.policy) fail(cmd, FwStatus.POLICY_FAILURE);
      const auth = checkIdAuth(a.idBlock, a.idAuth!, a.authorKeyEn);
      if (!auth.blockSigned || (a.authorKeyEn && !auth.idKeySigned)) fail(cmd, FwStatus.BAD_SIGNATURE);
      c.idKeyDigest = auth.idKeyDigest;
      c.authorKeyDigest = auth.authorKeyDigest;
      c.authorKeyEn = a.authorKeyEn;
      c.familyId = Buffer.from(block.familyId);
      c.imageId = Buffer.from(block.imageId);
      c.guestSvn = block.guestSvn;
    } else if (a.authorKeyEn) {
      fail(cmd, FwStatus.INVALID_PARAM);
    }
    c.measurement = ld;
    c.hostData = Buffer.from(a.hostData);
    c.vcekDisabled = a.vcekDisabled;
    c.state = 'running';
  }

  /** The guest-owned frames of a context (what the host must never read as plaintext). */
  owned(handle: number): ReadonlySet<number> {
    return this.contexts.get(handle)?.rmp ?? new Set();
  }

  /**
   * SNP_GUEST_REQUEST: decrypts the guest's message with the VMPCK it names, refuses a
   * replayed or skipped sequence number, answers with the response sealed under the same
   * VMPCK and the next number. A request that cannot be decoded (unknown type, payload
   * shorter than its structure) is INVALID_PARAM and, like any refusal, uses nothing up.
   */
  guestRequest(handle: number, request: Buffer): Buffer {
    const cmd = 'SNP_GUEST_REQUEST';
    const c = this.ctx(cmd, handle, 'running');
    let h;
    try {
      h = peekGuestMessage(request);
    } catch {
      return fail(cmd, FwStatus.INVALID_PARAM);
    }
    if (h.vmpck > 3) fail(cmd, FwStatus.INVALID_PARAM);
    const key = c.vmpcks[h.vmpck]!;
    if (h.seqno !== c.seq[h.vmpck]! + 1n) fail(cmd, FwStatus.INVALID_PARAM);
    let req: ReturnType<typeof decodeRequest>;
    try {
      req = decodeRequest(openGuestMessage(key, request));
    } catch {
      return fail(cmd, FwStatus.INVALID_PARAM);
    }
    const type = req.report ? MsgType.REPORT_RSP : MsgType.KEY_RSP;
    const payload = req.report ? this.report(c, req.report, h.vmpck) : this.derivedKey(c, req.key!, h.vmpck);
    // Answered (even with a status in the response): the pair (request n, response n+1) is used up.
    c.seq[h.vmpck] = h.seqno + 1n;
    return sealGuestMessage(key, { seqno: h.seqno + 1n, type, version: 1, vmpck: h.vmpck, payload });
  }

  /**
   * MSG_REPORT_REQ: report version 3 signed with the VCEK of the reported TCB. The VMPL
   * asked for may not be more privileged (lower) than the requesting VMPCK's (SNP ABI,
   * MSG_REPORT_REQ), as for MSG_KEY_REQ: VMPCK3 cannot vouch for VMPL 0.
   */
  private report(c: SnpContext, r: { reportData: Buffer; vmpl: number; keySelect: number }, vmpck: number): Buffer {
    if (r.vmpl < vmpck || r.vmpl > 3) return encodeReportResponse(FwStatus.INVALID_PARAM, null);
    // No VLEK is loaded: a report with key select VLEK, or for a guest launched with the VCEK disabled, cannot be signed.
    if (r.keySelect === 2 || c.vcekDisabled) return encodeReportResponse(FwStatus.INVALID_KEY, null);
    const st = this.snp.status();
    const api = this.platform.api;
    const body = encodeSnpReportBody({
      version: 3, guestSvn: c.guestSvn, policy: c.policy, familyId: c.familyId, imageId: c.imageId, vmpl: r.vmpl, signatureAlgo: 1,
      currentTcb: st.current, platformInfo: 1n, signerInfo: (c.authorKeyEn ? 1 : 0) | (st.maskChipKey ? 2 : 0),
      reportData: r.reportData, measurement: c.measurement, hostData: c.hostData, idKeyDigest: c.idKeyDigest, authorKeyDigest: c.authorKeyDigest,
      reportId: c.reportId, reportIdMa: Buffer.alloc(32, 0xff), reportedTcb: st.reported, cpuid: signatureFms(HOST_SIGNATURE[this.platform.generation]!),
      chipId: st.maskChipId ? Buffer.alloc(64) : this.platform.getId({ len: 64 }), committedTcb: st.committed,
      current: { build: this.platform.opts.build, minor: api.minor, major: api.major }, committed: { build: this.platform.opts.build, minor: api.minor, major: api.major },
      launchTcb: c.launchTcb,
    });
    // MASK_CHIP_KEY: the chip key signs nothing (the signature stays zero).
    return encodeReportResponse(0, st.maskChipKey ? body : this.snp.signReport(body));
  }

  /**
   * MSG_KEY_REQ: a 32-byte key from the chosen root (VCEK-derived for a TCB no newer than
   * the current one, or this guest's VMRK) mixed with the VMPL and the selected guest
   * fields: equal inputs on the same chip give the same key.
   */
  private derivedKey(c: SnpContext, k: KeyRequest, vmpck: number): Buffer {
    if (k.vmpl < vmpck || k.vmpl > 3 || k.guestSvn > c.guestSvn) return encodeKeyResponse(FwStatus.INVALID_PARAM, null);
    const st = this.snp.status();
    const tcb = k.guestFieldSelect & (1n << 5n) ? k.tcbVersion : st.current;
    if (k.guestFieldSelect & (1n << 5n) && !this.tcbNotNewer(tcb, st.current)) return encodeKeyResponse(FwStatus.INVALID_PARAM, null);
    const root = k.rootKeySelect === 1 ? c.vmrk : this.snp.derivedKeyRoot(tcb);
    const mix = createHmac('sha384', root).update('sevd-snp-derived-key');
    const u64 = (v: bigint) => {
      const b = Buffer.alloc(8);
      b.writeBigUInt64LE(v);
      return b;
    };
    mix.update(u64(BigInt(k.vmpl))).update(u64(k.guestFieldSelect));
    const sel = (bit: bigint) => (k.guestFieldSelect & (1n << bit)) !== 0n;
    if (sel(0n)) mix.update(u64(c.policy));
    if (sel(1n)) mix.update(c.imageId);
    if (sel(2n)) mix.update(c.familyId);
    if (sel(3n)) mix.update(c.measurement);
    if (sel(4n)) mix.update(u64(BigInt(k.guestSvn)));
    if (sel(5n)) mix.update(u64(tcb));
    return encodeKeyResponse(0, mix.digest().subarray(0, 32));
  }

  private tcbNotNewer(a: bigint, b: bigint): boolean {
    for (let i = 0n; i < 8n; i++) if (((a >> (8n * i)) & 0xffn) > ((b >> (8n * i)) & 0xffn)) return false;
    return true;
  }

  /** SNP_DECOMMISSION: the context and its key go; its frames leave the RMP. */
  decommission(handle: number): void {
    const c = this.ctx('SNP_DECOMMISSION', handle);
    if (c.asid !== null) this.mc.removeKey(c.asid);
    this.contexts.delete(handle);
    this.platform.contextRemoved();
    this.snp.guestRemoved();
  }
}

/** A request's payload decoded by its type; throws on an unknown type or a short payload. */
function decodeRequest(msg: { type: number; payload: Buffer }): { report?: ReturnType<typeof decodeReportRequest>; key?: KeyRequest } {
  if (msg.type === MsgType.REPORT_REQ) return { report: decodeReportRequest(msg.payload) };
  if (msg.type === MsgType.KEY_REQ) return { key: decodeKeyRequest(msg.payload) };
  throw new RangeError(`unknown SNP guest message type ${msg.type}`);
}

function newVek(): Buffer {
  for (;;) {
    const k = randomBytes(32);
    if (!timingSafeEqual(k.subarray(0, 16), k.subarray(16))) return k;
  }
}
