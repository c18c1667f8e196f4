/**
 * KVM's SEV side of one VM, after the seed (linux Documentation/virt/kvm/x86/
 * amd-memory-encryption.rst) and arch/x86/kvm/svm/sev.c: the VM type, KVM_SEV_INIT2 or the
 * legacy KVM_SEV_INIT / KVM_SEV_ES_INIT, the ASID, and the KVM_MEMORY_ENCRYPT_OP commands
 * of a launch and of a migration (SEND_* / RECEIVE_*), each one or a few firmware
 * commands. A failure is a KvmError: the ioctl's negative errno and, when the firmware
 * refused, its status (the `error` field), exactly what QEMU gets and words its messages from.
 */
import { FirmwareError, FwStatus, type SevCommand } from '../firmware/status.js';
import type { GuestFirmware } from '../firmware/guest-firmware.js';
import { Policy } from '../../abi/policy.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import type { AsidPool } from './asid-pool.js';
import { buildVmsa, SevFeature, VMSA_SIZE } from '../../abi/vmsa.js';
import { SnpPageType, type SnpPageTypeCode } from '../../abi/snp/launch-digest.js';
import type { SnpFinishArgs, SnpGuestFirmware } from '../firmware/snp-guest-firmware.js';
import type { IncomingPacket, OutgoingPacket, SendReceive, SendStartInput } from '../firmware/send-receive.js';
import type { OutBuf, PlatformStatus } from '../firmware/platform.js';
import type { SevDevice } from '../firmware/sev-device.js';
import { GState } from '../firmware/guest-contexts.js';

/** What the VMM hands the kernel: migration packets of SEND/RECEIVE_UPDATE_DATA, and /dev/sev. */
export type { IncomingPacket, OutgoingPacket, SendStartInput } from '../firmware/send-receive.js';
export type { SevDevice };
/** What /dev/sev's ioctls report when the firmware refuses (the platform commands word it). */
export { FirmwareError };

/** Pages one KVM_SEV_SNP_LAUNCH_UPDATE call processes at most before returning progress. */
export const SNP_UPDATE_PAGES = 128;
import { generationFeatures } from '../firmware/generations.js';
import type { Generation } from '../firmware/emulated-root.js';

export const VmType = { DEFAULT: 0, SEV: 2, SEV_ES: 3, SNP: 4 } as const;
export type VmTypeCode = (typeof VmType)[keyof typeof VmType];

export const Errno = { EIO: 5, EFAULT: 14, EBUSY: 16, EINVAL: 22, ENOTTY: 25 } as const;

/** GHCB protocol versions KVM speaks; INIT2 with 0 means this. */
const GHCB_VERSION_MAX = 2;

export class KvmError extends Error {
  constructor(
    readonly ioctl: string,
    /** Negative errno, as the ioctl returns it. */
    readonly ret: number,
    /** The firmware status (0 when KVM refused before the firmware ran). */
    readonly fwError = 0,
    readonly fwCommand: SevCommand | null = null,
    /** Lengths a length query reports back (INVALID_LEN). */
    readonly lengths: Record<string, number> = {},
  ) {
    super(`${ioctl} ret=${ret} fw_error=${fwError}`);
  }
}

/** The SEV VM types this host's KVM accepts at KVM_CREATE_VM. */
export function supportedVmTypes(g: Generation): VmTypeCode[] {
  const f = generationFeatures(g);
  return [VmType.DEFAULT, VmType.SEV, ...(f.es ? [VmType.SEV_ES] : []), ...(f.snp ? [VmType.SNP] : [])];
}

/** The KVM_X86_SEV_VMSA_FEATURES attribute: DebugSwap from milan on, SecureTSC from genoa on. */
export function supportedVmsaFeatures(g: Generation): number {
  const order: Generation[] = ['naples', 'rome', 'milan', 'genoa', 'turin'];
  const at = order.indexOf(g);
  return (at >= 2 ? SevFeature.DEBUG_SWAP : 0) | (at >= 3 ? SevFeature.SECURE_TSC : 0);
}

export interface KvmHost {
  firmware: GuestFirmware;
  /** The SNP guest commands (milan and later). */
  snpFirmware: SnpGuestFirmware;
  /** SEND_* / RECEIVE_* (migration). */
  sendReceive: SendReceive;
  asids: AsidPool;
  /** The emulated chip's generation (what KVM and the firmware support). */
  generation: Generation;
}

export interface SevInitArgs {
  vmsaFeatures?: number;
  flags?: number;
  ghcbVersion?: number;
}

/** A vCPU's reset state as user space set it (KVM_SET_REGS / _SREGS / CPUID). */
export interface VcpuReset {
  eip: number;
  signature: number;
}

export class KvmSev {
  private initialized = false;
  /** The VM runs with encrypted register state (an ES VM, or KVM_SEV_ES_INIT). */
  es = false;
  vmsaFeatures = 0;
  ghcbVersion = 0;
  /** KVM_SEV_INIT2 syncs the FPU control words into VMSAs; the legacy commands did not. */
  private init2 = false;
  asid: number | null = null;
  /** The firmware handle once LAUNCH_START or RECEIVE_START made a context. */
  handle = 0;
  private launched = false;
  /** True once SEND_FINISH ran: the firmware context is SENT and may never run here again. */
  get sent(): boolean {
    return !this.snp && this.launched && this.fw.contexts.peek(this.handle)?.state === GState.SENT;
  }

  /** An SNP VM (KVM_X86_SNP_VM): SNP launch commands, VMSAs added at LAUNCH_FINISH. */
  get snp(): boolean {
    return this.vmType === VmType.SNP;
  }

  private constructor(private readonly host: KvmHost, readonly vmType: VmTypeCode) {}

  /** KVM_CREATE_VM with an SEV type: -EINVAL where this host's KVM lacks the type. */
  static createVm(host: KvmHost, vmType: VmTypeCode): KvmSev {
    if (!supportedVmTypes(host.generation).includes(vmType)) throw new KvmError('KVM_CREATE_VM', -Errno.EINVAL);
    return new KvmSev(host, vmType);
  }

  private get fw(): GuestFirmware {
    return this.host.firmware;
  }

  /** Runs firmware work; a FirmwareError becomes -EIO with its status. */
  private fwOp<T>(ioctl: string, fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      if (e instanceof FirmwareError) throw new KvmError(ioctl, -Errno.EIO, e.status, e.command, e.lengths);
      throw e;
    }
  }

  private refuse(ioctl: string, errno: number): never {
    throw new KvmError(ioctl, -errno);
  }

  /**
   * KVM_SEV_INIT2 (the seed's rules, in KVM's order), or the legacy KVM_SEV_INIT /
   * KVM_SEV_ES_INIT, which only a KVM_X86_DEFAULT_VM takes and which behave as INIT2 with
   * no features and GHCB version 0 / 1. Takes the VM's ASID.
   */
  init(cmd: 'KVM_SEV_INIT2' | 'KVM_SEV_INIT' | 'KVM_SEV_ES_INIT', args: SevInitArgs = {}): void {
    if (this.initialized) this.refuse(cmd, Errno.EINVAL);
    let es: boolean;
    let ghcb = 0;
    let features = 0;
    if (cmd === 'KVM_SEV_INIT2') {
      if (this.vmType === VmType.DEFAULT) this.refuse(cmd, Errno.EINVAL);
      es = this.vmType === VmType.SEV_ES || this.vmType === VmType.SNP;
      features = args.vmsaFeatures ?? 0;
      ghcb = args.ghcbVersion ?? 0;
      if ((args.flags ?? 0) !== 0) this.refuse(cmd, Errno.EINVAL);
      if (features & ~supportedVmsaFeatures(this.host.generation)) this.refuse(cmd, Errno.EINVAL);
      if (!es && (features !== 0 || ghcb !== 0)) this.refuse(cmd, Errno.EINVAL);
      if (ghcb > GHCB_VERSION_MAX) this.refuse(cmd, Errno.EINVAL);
      if (es && ghcb === 0) ghcb = GHCB_VERSION_MAX;
      // KVM sets SNPActive itself for SNP guests (and user space may not).
      if (this.vmType === VmType.SNP) features |= SevFeature.SNP_ACTIVE;
    } else {
      if (this.vmType !== VmType.DEFAULT) this.refuse(cmd, Errno.EINVAL);
      es = cmd === 'KVM_SEV_ES_INIT';
      if (es && !generationFeatures(this.host.generation).es) this.refuse(cmd, Errno.ENOTTY);
      ghcb = es ? 1 : 0;
    }
    // Out of clean ASIDs, KVM issues DF_FLUSH itself; its failure fails the INIT.
    const asid = this.fwOp(cmd, () => this.host.asids.allocate(es));
    if (asid === undefined) this.refuse(cmd, Errno.EBUSY);
    this.asid = asid;
    this.es = es;
    this.vmsaFeatures = features;
    this.ghcbVersion = ghcb;
    this.init2 = cmd === 'KVM_SEV_INIT2';
    this.initialized = true;
  }

  private requireInit(ioctl: string): void {
    if (!this.initialized) this.refuse(ioctl, Errno.ENOTTY);
  }

  /** An ioctl that is one firmware command on an initialized VM. */
  private initOp<T>(ioctl: string, fn: () => T): T {
    this.requireInit(ioctl);
    return this.fwOp(ioctl, fn);
  }

  /** KVM_SEV_LAUNCH_START: LAUNCH_START, then ACTIVATE with the VM's ASID. */
  launchStart(a: { handle: number; policy: number; godh: Uint8Array | null; session: Uint8Array | null }): number {
    const ioctl = 'KVM_SEV_LAUNCH_START';
    this.requireInit(ioctl);
    // An ES VM needs an ES policy and a plain SEV VM must not have one (KVM checks both).
    if (!!(a.policy & Policy.ES) !== this.es) this.refuse(ioctl, Errno.EINVAL);
    this.handle = this.fwOp(ioctl, () => this.fw.launchStart(a));
    this.launched = true;
    this.fwOp(ioctl, () => this.fw.activate(this.handle, this.asid!));
    return this.handle;
  }

  /** KVM_SEV_SEND_START (a null `sessionOut` is QEMU's length query: INVALID_LEN with the length). */
  sendStart(target: SendStartInput, sessionOut: OutBuf): { session: Buffer; policy: number } {
    return this.initOp('KVM_SEV_SEND_START', () => this.host.sendReceive.sendStart(this.handle, target, sessionOut));
  }

  /** KVM_SEV_SEND_UPDATE_DATA, one call per batch of pages (each packet gets its header and ciphertext). */
  sendUpdateData(mem: GuestMemory, packets: readonly OutgoingPacket[]): void {
    this.initOp('KVM_SEV_SEND_UPDATE_DATA', () => this.host.sendReceive.sendUpdateDataPages(this.handle, mem, packets));
  }

  sendFinish(): void {
    this.initOp('KVM_SEV_SEND_FINISH', () => this.host.sendReceive.sendFinish(this.handle));
  }

  sendCancel(): void {
    this.initOp('KVM_SEV_SEND_CANCEL', () => this.host.sendReceive.sendCancel(this.handle));
  }

  /** KVM_SEV_RECEIVE_START: RECEIVE_START, then ACTIVATE (the migration target). */
  receiveStart(a: { handle: number; policy: number; pdh: Uint8Array; session: Uint8Array }): number {
    const ioctl = 'KVM_SEV_RECEIVE_START';
    this.requireInit(ioctl);
    this.handle = this.fwOp(ioctl, () => this.host.sendReceive.receiveStart(a));
    this.launched = true;
    this.fwOp(ioctl, () => this.fw.activate(this.handle, this.asid!));
    return this.handle;
  }

  /** KVM_SEV_RECEIVE_UPDATE_DATA, one call per batch of received packets. */
  receiveUpdateData(mem: GuestMemory, packets: readonly IncomingPacket[]): void {
    this.initOp('KVM_SEV_RECEIVE_UPDATE_DATA', () => this.host.sendReceive.receiveUpdateDataPages(this.handle, mem, packets));
  }

  receiveFinish(): void {
    this.initOp('KVM_SEV_RECEIVE_FINISH', () => this.host.sendReceive.receiveFinish(this.handle));
  }

  launchUpdateData(mem: GuestMemory, gpa: number, len: number): void {
    const ioctl = 'KVM_SEV_LAUNCH_UPDATE_DATA';
    this.requireInit(ioctl);
    if (gpa % 16 !== 0 || len % 16 !== 0) this.refuse(ioctl, Errno.EINVAL);
    this.fwOp(ioctl, () => this.fw.launchUpdateData(this.handle, mem, gpa, len));
  }

  /**
   * KVM_SEV_LAUNCH_UPDATE_VMSA: for each vCPU in order, KVM syncs its register state into
   * the VMSA page (the FPU control words only under INIT2) and has the firmware measure
   * and encrypt it. `frames` are the guest frames that hold the VMSAs.
   */
  launchUpdateVmsa(mem: GuestMemory, vcpus: readonly VcpuReset[], frames: readonly number[]): void {
    const ioctl = 'KVM_SEV_LAUNCH_UPDATE_VMSA';
    this.requireInit(ioctl);
    if (!this.es || frames.length !== vcpus.length) this.refuse(ioctl, Errno.EINVAL);
    vcpus.forEach((v, i) => {
      const gpa = frames[i]! * VMSA_SIZE;
      mem.write(gpa, buildVmsa({ eip: v.eip, vcpuSignature: v.signature, sevFeatures: this.vmsaFeatures, fpuInit: this.init2 }));
      this.fwOp(ioctl, () => this.fw.launchUpdateVmsa(this.handle, mem, gpa, VMSA_SIZE));
    });
  }

  /** KVM_SEV_LAUNCH_MEASURE; `len` 0 is the length query (-EIO, INVALID_LEN, the length). */
  launchMeasure(len: number): Buffer {
    return this.initOp('KVM_SEV_LAUNCH_MEASURE', () => this.fw.launchMeasure(this.handle, len === 0 ? null : { len }));
  }

  launchSecret(hdr: Uint8Array, mem: GuestMemory, gpa: number, trans: Uint8Array): void {
    this.initOp('KVM_SEV_LAUNCH_SECRET', () => this.fw.launchSecret(this.handle, hdr, mem, gpa, trans.length, trans));
  }

  launchFinish(): void {
    this.initOp('KVM_SEV_LAUNCH_FINISH', () => this.fw.launchFinish(this.handle));
  }

  /** KVM_SEV_GET_ATTESTATION_REPORT; `len` 0 is the length query. */
  attestationReport(mnonce: Uint8Array, len: number): Buffer {
    return this.initOp('KVM_SEV_GET_ATTESTATION_REPORT', () => this.fw.attestation(this.handle, mnonce, len === 0 ? null : { len }));
  }

  /** KVM_SEV_DBG_DECRYPT. */
  dbgDecrypt(mem: GuestMemory, gpa: number, len: number): Buffer {
    return this.initOp('KVM_SEV_DBG_DECRYPT', () => this.fw.dbgDecrypt(this.handle, mem, gpa, len));
  }

  // ---- SNP (the seed's KVM_SEV_SNP_LAUNCH_START / UPDATE / FINISH) ----

  private requireSnp(ioctl: string): void {
    this.requireInit(ioctl);
    if (!this.snp) this.refuse(ioctl, Errno.EINVAL);
  }

  /** KVM_SEV_SNP_LAUNCH_START: the context, bound to the VM's ASID. */
  snpLaunchStart(a: { policy: bigint; gosvw: Buffer }): number {
    const ioctl = 'KVM_SEV_SNP_LAUNCH_START';
    this.requireSnp(ioctl);
    this.handle = this.fwOp(ioctl, () => this.host.snpFirmware.launchStart(a));
    this.launched = true;
    this.fwOp(ioctl, () => this.host.snpFirmware.activate(this.handle, this.asid!));
    return this.handle;
  }

  /**
   * KVM_SEV_SNP_LAUNCH_UPDATE: the range must carry the private memory attribute. KVM may
   * process only part of it and return with the range advanced; the caller loops (here at
   * most SNP_UPDATE_PAGES pages per call, so the loop is real).
   */
  snpLaunchUpdate(mem: GuestMemory, range: { gpa: number; len: number }, type: SnpPageTypeCode): { gpa: number; len: number } {
    const ioctl = 'KVM_SEV_SNP_LAUNCH_UPDATE';
    this.requireSnp(ioctl);
    if (range.gpa % 4096 || range.len % 4096 || range.len === 0) this.refuse(ioctl, Errno.EINVAL);
    for (let at = range.gpa; at < range.gpa + range.len; at += 4096) if (!mem.isPrivate(at / 4096)) this.refuse(ioctl, Errno.EINVAL);
    const n = Math.min(range.len, SNP_UPDATE_PAGES * 4096);
    this.fwOp(ioctl, () => this.host.snpFirmware.launchUpdate(this.handle, mem, range.gpa, n, type));
    return { gpa: range.gpa + n, len: range.len - n };
  }

  /**
   * KVM_SEV_SNP_LAUNCH_FINISH: KVM syncs each vCPU's VMSA (SNPActive and the VM's
   * features in SEV_FEATURES) and adds it as a VMSA page, then finishes the launch.
   */
  snpLaunchFinish(mem: GuestMemory, vcpus: readonly VcpuReset[], frames: readonly number[], args: SnpFinishArgs): void {
    const ioctl = 'KVM_SEV_SNP_LAUNCH_FINISH';
    this.requireSnp(ioctl);
    vcpus.forEach((v, i) => {
      const gpa = frames[i]! * VMSA_SIZE;
      mem.write(gpa, buildVmsa({ eip: v.eip, vcpuSignature: v.signature, sevFeatures: this.vmsaFeatures, fpuInit: true }));
      mem.setPrivate(gpa, VMSA_SIZE, true);
      this.fwOp(ioctl, () => this.host.snpFirmware.launchUpdate(this.handle, mem, gpa, VMSA_SIZE, SnpPageType.VMSA));
    });
    this.fwOp(ioctl, () => this.host.snpFirmware.launchFinish(this.handle, args));
  }

  /** SNP_GUEST_REQUEST on the guest's behalf (KVM's guest-request exit). */
  snpGuestRequest(request: Buffer): Buffer {
    const ioctl = 'SNP_GUEST_REQUEST';
    this.requireSnp(ioctl);
    return this.fwOp(ioctl, () => this.host.snpFirmware.guestRequest(this.handle, request));
  }

  /** The VM is destroyed: DEACTIVATE, DECOMMISSION, the ASID back to the pool (DF_FLUSH later). */
  destroy(): void {
    if (this.snp) {
      if (this.launched && this.host.snpFirmware.has(this.handle)) {
        try {
          this.host.snpFirmware.decommission(this.handle);
        } catch (e) {
          if (!(e instanceof FirmwareError)) throw e;
        }
      }
      if (this.asid !== null) this.host.asids.release(this.asid);
      this.asid = null;
      this.launched = false;
      this.initialized = false;
      return;
    }
    const ctx = this.launched ? this.fw.contexts.peek(this.handle) : undefined;
    // KVM ignores firmware failures on the way out (sev_unbind_asid, sev_decommission): a
    // context the firmware would not drop stays behind, as on real hardware.
    const quietly = (fn: () => void) => {
      try {
        fn();
      } catch (e) {
        if (!(e instanceof FirmwareError)) throw e;
      }
    };
    if (ctx && ctx.asid !== null && ctx.asid === this.asid) quietly(() => this.fw.deactivate(this.handle));
    if (ctx) quietly(() => this.fw.decommission(this.handle));
    if (this.asid !== null) this.host.asids.release(this.asid);
    this.asid = null;
    this.launched = false;
    this.initialized = false;
  }
}

/**
 * SEV_PLATFORM_STATUS on /dev/sev, as QEMU's sev_common_kvm_init asks it: a firmware refusal
 * is a KvmError with the firmware status, as the ioctl reports it.
 */
export function sevPlatformStatus(device: SevDevice): PlatformStatus {
  try {
    return device.status();
  } catch (e) {
    if (e instanceof FirmwareError) throw new KvmError('SEV_PLATFORM_STATUS', -Errno.EIO, e.status, e.command);
    throw e;
  }
}

/** The firmware statuses QEMU treats as "ask again with this length". */
export const isLengthQuery = (e: unknown): boolean => e instanceof KvmError && e.fwError === FwStatus.INVALID_LEN;
