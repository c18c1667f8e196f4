/**
 * The SNP side of the emulated Secure Processor (SNP ABI 56860, TCB_VERSION and SNP_PLATFORM_STATUS): TCB versions (current,
 * reported, committed), the chip-id and chip-key masks, SNP_PLATFORM_STATUS, SNP_CONFIG,
 * SNP_COMMIT, and the VCEK. The VCEK is sevd's choice (no AMD secret exists here): a P-384
 * key derived from the chip-unique CEK secret and the full TCB version with HKDF-SHA384,
 * so one chip at one TCB always has the same VCEK and any TCB change gives another. The
 * private key never leaves this module; the KDS gets the public key only.
 */
import { hkdfSync, createPublicKey, type KeyObject } from 'node:crypto';
import { p384 } from '@noble/curves/nist.js';
import { FirmwareError, FwStatus } from './status.js';
import { p384KeyFromScalar } from './keys.js';
import { decodeTcb, encodeTcb, tcbAtLeast, type SnpProduct, type Tcb } from '../../abi/snp/tcb.js';
import { signSnpReport } from '../../abi/snp/report.js';
import type { Generation } from './emulated-root.js';
import { LruCache } from '../util/lru.js';

const N = p384.Point.CURVE().n;

export const SNP_PRODUCT: Partial<Record<Generation, SnpProduct>> = { milan: 'Milan', genoa: 'Genoa', turin: 'Turin' };

/** What the NV store keeps of SNP (TCBs as u64 in hex). */
export interface SnpNv {
  currentTcb: string;
  reportedTcb: string;
  committedTcb: string;
  maskChipId: boolean;
  maskChipKey: boolean;
}

export interface SnpInitial {
  tcb: Tcb;
  reportedTcb: Tcb | null;
  maskChipId: boolean;
  maskChipKey: boolean;
}

/** What persists of the SNP platform: TCBs and masks. */
interface SnpState {
  current: bigint;
  reported: bigint;
  committed: bigint;
  maskChipId: boolean;
  maskChipKey: boolean;
}

/** SNP_PLATFORM_STATUS: the persistent state and GUEST_COUNT, the number of valid SNP guests. */
export interface SnpStatus extends SnpState {
  guestCount: number;
}

const hex = (v: bigint) => v.toString(16).padStart(16, '0');

export class SnpPlatform {
  private state: SnpState;
  /** SNP guests from SNP_LAUNCH_START to SNP_DECOMMISSION (not persisted: no guest outlives the process). */
  private guests = 0;
  /** VCEKs by TCB: any TCB can be asked for (the KDS endpoint), so only the latest few are kept. */
  private readonly vceks = new LruCache<bigint, KeyObject>(16);

  constructor(
    readonly product: SnpProduct,
    /** The chip-unique secret the VCEK derives from (the CEK's private scalar). */
    private readonly chipSecret: () => Buffer,
    /** Persists a new SNP state (all-or-nothing); throws if the write fails. */
    private readonly persist: (nv: SnpNv) => void,
    saved: SnpNv | undefined,
    initial: SnpInitial,
  ) {
    if (saved) {
      this.state = {
        current: BigInt('0x' + saved.currentTcb), reported: BigInt('0x' + saved.reportedTcb), committed: BigInt('0x' + saved.committedTcb),
        maskChipId: saved.maskChipId, maskChipKey: saved.maskChipKey,
      };
    } else {
      const current = encodeTcb(product, initial.tcb);
      this.state = {
        current, reported: initial.reportedTcb ? encodeTcb(product, initial.reportedTcb) : current, committed: current,
        maskChipId: initial.maskChipId, maskChipKey: initial.maskChipKey,
      };
    }
  }

  /** The NV form of the current state (the platform writes it with the rest). */
  get nv(): SnpNv {
    const s = this.state;
    return { currentTcb: hex(s.current), reportedTcb: hex(s.reported), committedTcb: hex(s.committed), maskChipId: s.maskChipId, maskChipKey: s.maskChipKey };
  }

  private commit(next: SnpState): void {
    const before = this.state;
    this.state = next;
    try {
      this.persist(this.nv);
    } catch (e) {
      this.state = before;
      throw e;
    }
  }

  status(): SnpStatus {
    return { ...this.state, guestCount: this.guests };
  }

  /** The guest side of the firmware: SNP_LAUNCH_START made a guest valid. */
  guestCreated(): void {
    this.guests++;
  }

  /** SNP_DECOMMISSION: the guest is gone. */
  guestRemoved(): void {
    this.guests = Math.max(0, this.guests - 1);
  }

  /** SNP_CONFIG: the reported TCB may not exceed the current one. */
  config(a: { reportedTcb?: Tcb; maskChipId?: boolean; maskChipKey?: boolean }): void {
    const next = { ...this.state };
    if (a.reportedTcb) {
      const reported = encodeTcb(this.product, a.reportedTcb);
      if (!tcbAtLeast(this.product, this.state.current, reported)) throw new FirmwareError('SNP_CONFIG', FwStatus.INVALID_PARAM);
      next.reported = reported;
    }
    if (a.maskChipId !== undefined) next.maskChipId = a.maskChipId;
    if (a.maskChipKey !== undefined) next.maskChipKey = a.maskChipKey;
    this.commit(next);
  }

  /** SNP_COMMIT: the committed TCB (anti-rollback floor) becomes the current one. */
  commitTcb(): void {
    this.commit({ ...this.state, committed: this.state.current });
  }

  /**
   * sevd's stand-in for a firmware or microcode update: a new current TCB, never below the
   * committed one. A reported TCB above the new current one follows it down.
   */
  setTcb(tcb: Tcb): void {
    const current = encodeTcb(this.product, tcb);
    if (!tcbAtLeast(this.product, current, this.state.committed)) {
      throw new SnpTcbError(`SEV-SNP: TCB ${JSON.stringify(decodeTcb(this.product, current))} is below the committed TCB ${JSON.stringify(decodeTcb(this.product, this.state.committed))}`);
    }
    const reported = tcbAtLeast(this.product, current, this.state.reported) ? this.state.reported : current;
    this.commit({ ...this.state, current, reported });
  }

  /** The VCEK for a TCB (default: the reported one, which signs reports). */
  private vcek(tcb: bigint): KeyObject {
    let k = this.vceks.get(tcb);
    if (!k) {
      const info = Buffer.alloc(8);
      info.writeBigUInt64LE(tcb);
      const okm = Buffer.from(hkdfSync('sha384', this.chipSecret(), Buffer.from(`sevd-vcek-${this.product}`), info, 48));
      k = p384KeyFromScalar(1n + (BigInt('0x' + okm.toString('hex')) % (N - 1n)));
      this.vceks.set(tcb, k);
    }
    return k;
  }

  /** Signs an SNP report body with the VCEK of the reported TCB (the key never leaves here). */
  signReport(body: Buffer): Buffer {
    return signSnpReport(body, this.vcek(this.state.reported));
  }

  /** The root of VCEK-derived guest keys (MSG_KEY_REQ) for a TCB: a secret of this chip and TCB. */
  derivedKeyRoot(tcb: bigint): Buffer {
    const info = Buffer.alloc(8);
    info.writeBigUInt64LE(tcb);
    return Buffer.from(hkdfSync('sha384', this.chipSecret(), Buffer.from(`sevd-vcek-derive-${this.product}`), info, 48));
  }

  /** The VCEK's public key for a TCB of this chip: what AMD's KDS certifies. */
  vcekPublicKey(tcb: bigint = this.state.reported): KeyObject {
    return createPublicKey(this.vcek(tcb));
  }
}

/** sev-snp-set-tcb below the committed TCB (not a firmware status: sevd's update stand-in). */
export class SnpTcbError extends Error {}
