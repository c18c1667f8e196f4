/**
 * One guest's SEV state as QEMU's target/i386/sev.c keeps it: the VM type and SEV INIT,
 * the launch flow at machine init (LAUNCH_START, LAUNCH_UPDATE_DATA of the firmware and
 * the kernel hashes, for SEV-ES the vCPUs' VMSAs, LAUNCH_MEASURE), LAUNCH_FINISH on the
 * first run, the SevState seen over QMP, and teardown. It talks to the KVM layer only,
 * and words KVM's failures as QEMU does.
 */
import { readWhole, type FileAccess } from '../confinement/paths.js';
import { fwErrorText } from '../../abi/fw-status.js';
import { Policy } from '../../abi/policy.js';
import {
  isLengthQuery, KvmError, KvmSev, sevPlatformStatus, VmType, type IncomingPacket, type OutgoingPacket, type SendStartInput, type VcpuReset,
} from '../kvm/kvm-sev.js';
import { esResetEip } from '../../abi/vmsa.js';
import { glibBase64Decode } from '../util/base64.js';
import { QmpError } from '../qmp/errors.js';
import { strerror } from '../util/strerror.js';
import { buildKernelHashesTable, PADDED_TABLE_SIZE } from '../../abi/kernel-hashes.js';
import { findEntry, readBaseSize, SEV_HASH_TABLE_BLOCK_GUID, SEV_SECRET_BLOCK_GUID } from '../../abi/ovmf-table.js';
import type { Guest } from '../guest/guest.js';
import type { SevHost } from './sev-host.js';
import { BSP_RESET_EIP, CPU_MODELS, HOST_SIGNATURE, VMSA_SIZE } from '../../abi/vmsa.js';
import { VMSA_REGION } from '../guest/layout.js';

export const SEV_STATES = ['uninit', 'launch-update', 'launch-secret', 'running', 'send-update', 'receive-update'] as const;
export type SevState = (typeof SEV_STATES)[number];

/** QEMU's sev-snp-guest properties (docs/interface.md §9), decoded. */
export interface SnpGuestSpec {
  policy: bigint;
  gosvw: Buffer;
  idBlock: Buffer | null;
  idAuth: Buffer | null;
  authorKeyEnabled: boolean;
  hostData: Buffer;
  vcekDisabled: boolean;
  certsFile: string | null;
  secureTsc: boolean;
}

export interface SevGuestSpec {
  policy: number;
  handle: number;
  dhCertFile: string | null;
  sessionFile: string | null;
  cbitpos: number | null;
  reducedPhysBits: number | null;
  kernelHashes: boolean;
  /** An `sev-snp-guest` object (then `policy` above is unused: see snp.policy). */
  snp: SnpGuestSpec | null;
  /** QEMU's `legacy-vm-type` (9.1+): true = KVM_X86_DEFAULT_VM with the legacy INIT commands. */
  legacyVmType: boolean;
  smp: number;
  /** A QEMU CPU model name, or `host`. */
  cpu: string;
}

/** KVM's failure as QEMU reports a launch command's: the interface's firmware text, or the errno. */
export function kvmFailure(e: unknown, qemuText: (e: KvmError) => string): never {
  if (!(e instanceof KvmError)) throw e;
  if (e.fwCommand) throw QmpError.generic(`SEV: ${e.fwCommand} failed: fw_err=${e.fwError} (${fwErrorText(e.fwError)})`);
  throw QmpError.generic(qemuText(e));
}

export function kvm<T>(fn: () => T, qemuText: (e: KvmError) => string = (e) => `SEV: ${e.ioctl} failed: ret=${e.ret}`): T {
  try {
    return fn();
  } catch (e) {
    return kvmFailure(e, qemuText);
  }
}

/** QEMU's length query: the call without a buffer fails with INVALID_LEN and the length it needs. */
function queriedLength(query: () => unknown, key: string): number {
  try {
    query();
  } catch (e) {
    if (isLengthQuery(e)) return (e as KvmError).lengths[key]!;
    throw e;
  }
  return 0;
}

export class SevGuest {
  state: SevState = 'uninit';
  /** The firmware handle (QEMU updates the `handle` property with it). */
  handle: number;
  policy: number;
  /** KVM's side of the VM (created at launch or RECEIVE_START). */
  protected kvmSev: KvmSev | null = null;
  /** PLATFORM_STATUS values read when the guest was created. */
  readonly api: { major: number; minor: number; build: number };
  /** base64 of MEASURE ‖ MNONCE, taken once at machine init. */
  measurement: string | null = null;
  /** gpa of the last successful sev-inject-launch-secret. */
  lastSecretGpa: number | null = null;
  lastSecretLen = 0;

  constructor(readonly guest: Guest, readonly spec: SevGuestSpec, protected readonly host: SevHost) {
    this.handle = spec.handle;
    this.policy = spec.policy;
    // QEMU's startup checks, in order (QEMU target/i386/sev.c, sev_common_kvm_init).
    const requested = spec.cbitpos ?? host.cbitpos;
    if (requested !== host.cbitpos) {
      throw QmpError.generic(`sev_common_kvm_init: cbitpos check failed, host '${host.cbitpos}' requested '${requested}'`);
    }
    const rpb = spec.reducedPhysBits ?? host.reducedPhysBits;
    if (rpb < 1 || rpb > 63) {
      throw QmpError.generic(`sev_common_kvm_init: reduced_phys_bits check failed, it should be in the range of 1 to 63, requested '${rpb}'`);
    }
    let st;
    try {
      st = sevPlatformStatus(host.device);
    } catch (e) {
      if (!(e instanceof KvmError)) throw e;
      throw QmpError.generic(`sev_common_kvm_init: failed to get platform status ret=-1 fw_error='${e.fwError}: ${fwErrorText(e.fwError)}'`);
    }
    this.api = { major: st.apiMajor, minor: st.apiMinor, build: st.build };
    if (spec.policy & Policy.ES && !st.es) {
      throw QmpError.generic('sev_common_kvm_init: guest policy requires SEV-ES, but host SEV-ES support unavailable');
    }
  }

  get es(): boolean {
    return (this.policy & Policy.ES) !== 0;
  }

  get asid(): number | null {
    return this.kvmSev?.asid ?? null;
  }

  /** QEMU's sev_kvm_type: legacy type before 9.1 or with legacy-vm-type, else SEV / SEV-ES. */
  protected vmType(): number {
    if (!this.host.init2 || this.spec.legacyVmType) return VmType.DEFAULT;
    return this.es ? VmType.SEV_ES : VmType.SEV;
  }

  /** KVM_CREATE_VM and the SEV INIT of sev_common_kvm_init; nothing is left behind on failure. */
  protected initVm(): KvmSev {
    const initFailed = (e: KvmError) => `sev_common_kvm_init: failed to initialize ret=${e.ret} fw_error=${e.fwError} '${fwErrorText(e.fwError)}'`;
    const vm = kvm(() => KvmSev.createVm(this.host, this.vmType() as 0), () => 'sev_common_kvm_init: host kernel does not support the requested SEV configuration.');
    if (vm.vmType === VmType.DEFAULT) kvm(() => vm.init(this.es ? 'KVM_SEV_ES_INIT' : 'KVM_SEV_INIT'), initFailed);
    else kvm(() => vm.init('KVM_SEV_INIT2', this.init2Args()), initFailed);
    this.kvmSev = vm;
    return vm;
  }
  /** What QEMU passes to KVM_SEV_INIT2 (SNP adds its features). */
  protected init2Args(): { vmsaFeatures?: number } {
    return {};
  }

  get sevStateCode(): number {
    return SEV_STATES.indexOf(this.state);
  }

  /** Everything up to machine-init-done; on failure nothing is left behind. */
  launch(): void {
    const godh = readB64File(this.guest.config.files, this.spec.dhCertFile);
    const session = readB64File(this.guest.config.files, this.spec.sessionFile);
    const vcpus = this.es ? this.vcpuResets() : [];
    const vm = this.initVm();
    try {
      this.handle = kvm(() => vm.launchStart({ handle: this.spec.handle, policy: this.policy, godh, session }));
      this.state = 'launch-update';
      const mem = this.guest.memory;
      mem.asid = vm.asid;
      mem.setDefaultPrivate();
      const flash = mem.regions.find((r) => r.name === 'system.flash0');
      if (flash) kvm(() => vm.launchUpdateData(mem, flash.base, flash.size));
      if (this.spec.kernelHashes && this.guest.config.kernel) this.measureKernelHashes();
      // SEV-ES: the vCPUs' register state is measured after all data (machine-init-done).
      if (this.es) kvm(() => vm.launchUpdateVmsa(mem, vcpus, this.vmsaFrames()));
      const blob = kvm(() => this.measureWithLengthQuery());
      this.measurement = blob.toString('base64');
      this.state = 'launch-secret';
    } catch (e) {
      this.destroy();
      throw e;
    }
  }

  /**
   * Each vCPU's reset state: the BSP at the reset vector, APs at the address OVMF's SEV-ES
   * reset block names (QEMU: sev_es_save_reset_vector; without it an AP would start where
   * the BSP does, which OVMF cannot handle, so QEMU refuses).
   */
  protected vcpuResets(): VcpuReset[] {
    const apEip = esResetEip(this.guest.ovmfEntries);
    if (apEip === undefined && this.spec.smp > 1) {
      throw QmpError.generic('SEV information block/Firmware GUID Table block not found in pflash rom');
    }
    const signature = this.vcpuSignature();
    return Array.from({ length: this.spec.smp }, (_, i) => ({ eip: i === 0 ? BSP_RESET_EIP : apEip!, signature }));
  }

  /** CPUID(1).EAX of the vCPU model (`host`: the chip's own). */
  protected vcpuSignature(): number {
    return this.spec.cpu === 'host' ? HOST_SIGNATURE[this.host.generation]! : CPU_MODELS[this.spec.cpu]!;
  }

  /** The guest frames of the VMSA region, in vCPU order. */
  protected vmsaFrames(): number[] {
    const r = this.guest.memory.regions.find((x) => x.name === VMSA_REGION);
    return Array.from({ length: this.spec.smp }, (_, i) => r!.base / VMSA_SIZE + i);
  }

  private measureWithLengthQuery(): Buffer {
    const vm = this.kvmSev!;
    return vm.launchMeasure(queriedLength(() => vm.launchMeasure(0), 'len'));
  }

  private measureKernelHashes(): void {
    const area = readBaseSize(findEntry(this.guest.ovmfEntries, SEV_HASH_TABLE_BLOCK_GUID));
    if (!area) throw QmpError.generic('SEV: kernel specified but guest firmware has no hashes table GUID');
    if (area.base === 0 || area.size < PADDED_TABLE_SIZE) {
      throw QmpError.generic(`SEV: guest firmware hashes table area is invalid (base=0x${area.base.toString(16)} size=0x${area.size.toString(16)})`);
    }
    const read = (p: string | null) => {
      if (p === null) return null;
      try {
        return readWhole(this.guest.config.files, 'images', p);
      } catch (e) {
        if (e instanceof QmpError) throw e;
        throw QmpError.generic(`could not load kernel '${p}': ${strerror(e)}`);
      }
    };
    const c = this.guest.config;
    const table = buildKernelHashesTable(read(c.kernel)!, read(c.initrd), c.append);
    this.guest.memory.write(area.base, table);
    kvm(() => this.kvmSev!.launchUpdateData(this.guest.memory, area.base, PADDED_TABLE_SIZE));
  }

  /**
   * First transition to running: LAUNCH_FINISH. A guest without a finished context (an
   * incoming one whose stream never got through RECEIVE_FINISH) must not run unencrypted.
   */
  beforeFirstRun(): void {
    if (this.state === 'launch-secret') {
      kvm(() => this.kvmSev!.launchFinish());
      this.state = 'running';
    } else if (this.state === 'uninit' || this.state === 'receive-update') {
      throw QmpError.generic('SEV: the guest has no finished encryption context');
    }
  }

  /**
   * Source (QEMU §17.1): SEND_START for the target's certificates, the session length
   * queried first as QEMU does. Failures carry the firmware's text.
   */
  sendStart(target: SendStartInput): { session: Buffer; policy: number } {
    const vm = this.kvmSev!;
    const len = kvm(() => queriedLength(() => vm.sendStart(target, null), 'sessionLen'));
    return kvm(() => vm.sendStart(target, { len }));
  }

  sendUpdateData(packets: readonly OutgoingPacket[]): void {
    kvm(() => this.kvmSev!.sendUpdateData(this.guest.memory, packets));
  }

  sendFinish(): void {
    kvm(() => this.kvmSev!.sendFinish());
  }

  sendCancel(): void {
    kvm(() => this.kvmSev!.sendCancel());
  }

  receiveUpdateData(packets: readonly IncomingPacket[]): void {
    kvm(() => this.kvmSev!.receiveUpdateData(this.guest.memory, packets));
  }

  /** True once SEND_FINISH ran: the context may never run on this host again. */
  get sentAway(): boolean {
    return this.kvmSev?.sent ?? false;
  }

  /** Destination (QEMU §17.2): RECEIVE_START with the stream's policy, PDH and session, then ACTIVATE. */
  receiveStart(policy: number, sourcePdh: Buffer, session: Buffer): void {
    const vm = this.initVm();
    try {
      this.handle = kvm(() => vm.receiveStart({ handle: this.spec.handle, policy, pdh: sourcePdh, session }));
      this.policy = policy;
      this.state = 'receive-update';
      this.guest.memory.asid = vm.asid;
      this.guest.memory.setDefaultPrivate();
    } catch (e) {
      this.destroy();
      throw e;
    }
  }

  /**
   * Destination, at the end of the stream (sevd's choice: the series waits for the first
   * run): RECEIVE_FINISH before the source is acknowledged, so a refusal fails the migration
   * while the source still has the guest.
   */
  receiveFinish(): void {
    kvm(() => this.kvmSev!.receiveFinish());
    this.state = 'running';
  }

  /** A half-received guest is dropped: firmware context, ASID and memory. */
  discardIncoming(): void {
    this.destroy();
    this.guest.memory.discard();
    this.state = 'uninit';
    this.handle = this.spec.handle;
    this.policy = this.spec.policy;
  }

  /** The SEV secret area as the guest's firmware publishes it (docs/interface.md §8). */
  secretArea(): { base: number; size: number } | undefined {
    const block = readBaseSize(findEntry(this.guest.ovmfEntries, SEV_SECRET_BLOCK_GUID));
    if (block && block.size > 0) return block;
    if (this.lastSecretGpa !== null) return { base: this.lastSecretGpa, size: this.lastSecretLen };
    return undefined;
  }

  /** The host's view for dumps: DBG_DECRYPT when the policy allows debugging, else ciphertext. */
  hostRead(gpa: number, len: number): Buffer {
    const mem = this.guest.memory;
    if (this.policy & Policy.NODBG || this.asid === null || !mem.isMapped(gpa)) return mem.read(gpa, len);
    const start = gpa - (gpa % 16);
    const end = Math.ceil((gpa + len) / 16) * 16;
    if (!mem.regionOf(start, end - start)) return mem.read(gpa, len);
    try {
      const plain = this.kvmSev!.dbgDecrypt(mem, start, end - start);
      return plain.subarray(gpa - start, gpa - start + len);
    } catch (e) {
      // Refused (a VMSA page, a context that cannot debug): the host sees what is stored.
      if (e instanceof KvmError) return mem.read(gpa, len);
      throw e;
    }
  }

  /** DEACTIVATE, DECOMMISSION, ASID back to the pool (guest teardown). */
  destroy(): void {
    this.kvmSev?.destroy();
    this.kvmSev = null;
    this.state = 'uninit';
    this.guest.memory.asid = null;
  }

  /** MSR_AMD64_SEV_STATUS as the running guest reads it, and its VMSA's SEV_FEATURES. */
  guestStatus(): { sev: boolean; es: boolean; snp: boolean; features: number } {
    const on = this.kvmSev !== null;
    return { sev: on, es: on && this.kvmSev!.es, snp: false, features: on && this.kvmSev!.es ? this.kvmSev!.vmsaFeatures : 0 };
  }

  /** LAUNCH_SECRET through KVM (sev-inject-launch-secret); KvmError for QEMU's wording. */
  launchSecret(hdr: Uint8Array, gpa: number, trans: Uint8Array): void {
    this.kvmSev!.launchSecret(hdr, this.guest.memory, gpa, trans);
  }

  /** KVM_SEV_GET_ATTESTATION_REPORT; `len` 0 is the length query. KvmError for QEMU's wording. */
  attestationReport(mnonce: Uint8Array, len: number): Buffer {
    if (!this.kvmSev) throw new KvmError('KVM_SEV_GET_ATTESTATION_REPORT', -25);
    return this.kvmSev.attestationReport(mnonce, len);
  }

  /** `info sev` lines (QEMU target/i386/sev.c, hmp_info_sev). */
  infoLines(modern: boolean): string[] {
    const lines = [
      `state: ${this.state}`,
      `build: ${this.api.build}`,
      `api version: ${this.api.major}.${this.api.minor}`,
      `handle: ${this.handle}`,
      `debug: ${this.policy & Policy.NODBG ? 'off' : 'on'}`,
      `key-sharing: ${this.policy & Policy.NOKS ? 'off' : 'on'}`,
    ];
    if (modern) return ['SEV type: sev', ...lines];
    return [lines[3]!, ...lines.slice(0, 3), ...lines.slice(4)];
  }
}

function readB64File(files: FileAccess, path: string | null): Buffer | null {
  if (path === null) return null;
  let text: string;
  try {
    text = readWhole(files, 'inputs', path).toString('latin1');
  } catch (e) {
    if (e instanceof QmpError) throw e;
    throw QmpError.generic(`SEV: Failed to read '${path}' (Failed to open file “${path}”: ${strerror(e)})`);
  }
  return glibBase64Decode(text);
}

