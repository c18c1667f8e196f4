/**
 * What every confidential guest kind shares (SEV, SEV-ES: sev-guest.ts; SNP: snp-guest.ts),
 * as QEMU's sev-common does: the startup checks of sev_common_kvm_init, KVM_CREATE_VM and
 * the SEV INIT, the vCPUs' reset state, the SevState, the guest's view of its SEV status,
 * and teardown. The kinds are siblings: each adds its own launch and commands and none
 * overrides this to switch something off. The launched context (LaunchedVm) owns the KVM
 * handle; it talks to the KVM layer only, words failures through qemu-errors.ts.
 */
import { QmpError } from '../errors/qmp-error.js';
import { Errno, KvmError, KvmSev, sevPlatformStatus, VmType, type SevInitArgs, type VcpuReset, type VmTypeCode } from '../kvm/kvm-sev.js';
import { esResetEip, BSP_RESET_EIP, CPU_MODELS, HOST_SIGNATURE, VMSA_SIZE } from '../../abi/vmsa.js';
import { findEntry, readBaseSize, SEV_SECRET_BLOCK_GUID } from '../../abi/ovmf-table.js';
import { VMSA_REGION } from '../guest/layout.js';
import type { Guest } from '../guest/guest.js';
import type { SevHost } from './sev-host.js';
import type { ConfidentialSpec } from './guest-spec-kinds.js';
import { LaunchedVm, SEV_STATES, type SevState } from './launched-vm.js';
import { kvmCall as kvm, launchWording, ownWording, SevFailure } from './qemu-errors.js';

/** MSR_AMD64_SEV_STATUS as the running guest reads it, and its VMSA's SEV_FEATURES. */
export interface GuestSevStatus {
  sev: boolean;
  es: boolean;
  snp: boolean;
  features: number;
}

export abstract class ConfidentialGuestBase<S extends ConfidentialSpec> {
  /** The launched context; null before the launch (or RECEIVE_START) and after teardown. */
  protected ctx: LaunchedVm | null = null;
  /** PLATFORM_STATUS values read when the guest was created. */
  readonly api: { major: number; minor: number; build: number };
  /** The platform has SEV-ES (for the kinds' own startup checks). */
  protected readonly platformEs: boolean;
  /** gpa and length of the last successful sev-inject-launch-secret (SEV's secret area fallback). */
  protected lastSecret: { gpa: number; len: number } | null = null;

  constructor(readonly guest: Guest, readonly spec: S, protected readonly host: SevHost) {
    // QEMU's startup checks, in order (QEMU target/i386/sev.c, sev_common_kvm_init).
    const requested = spec.cbitpos ?? host.cbitpos;
    if (requested !== host.cbitpos) {
      throw QmpError.generic(`sev_common_kvm_init: cbitpos check failed, host '${host.cbitpos}' requested '${requested}'`);
    }
    const rpb = spec.reducedPhysBits ?? host.reducedPhysBits;
    if (rpb < 1 || rpb > 63) {
      throw QmpError.generic(`sev_common_kvm_init: reduced_phys_bits check failed, it should be in the range of 1 to 63, requested '${rpb}'`);
    }
    const st = kvm(() => sevPlatformStatus(host.device), ownWording((e) => SevFailure.platformStatus(e.fwError)));
    this.api = { major: st.apiMajor, minor: st.apiMinor, build: st.build };
    this.platformEs = st.es;
  }

  /** Everything up to machine-init-done; on failure nothing is left behind. */
  abstract launch(): void;
  /** The first transition to running (LAUNCH_FINISH). */
  abstract beforeFirstRun(): void;
  /** The host's view of guest memory for dumps. */
  abstract hostRead(gpa: number, len: number): Buffer;
  /** `info sev` lines (QEMU target/i386/sev.c, hmp_info_sev). */
  abstract infoLines(modern: boolean): string[];
  /** query-sev's members for this kind (after enabled, api-*, build-id, state). */
  abstract queryMembers(modern: boolean): Record<string, string | number>;
  /** Encrypted register state (SEV-ES and SNP). */
  abstract get es(): boolean;
  /** The firmware handle QEMU reports (the spec's until a context exists). */
  abstract get handle(): number;
  /** QEMU's sev_kvm_type. */
  protected abstract vmType(): VmTypeCode;
  /** What QEMU passes to KVM_SEV_INIT2. */
  protected abstract init2Args(): SevInitArgs;

  get state(): SevState {
    return this.ctx?.state ?? 'uninit';
  }

  get sevStateCode(): number {
    return SEV_STATES.indexOf(this.state);
  }

  get asid(): number | null {
    return this.ctx?.kvm.asid ?? null;
  }

  /** True once SEND_FINISH ran: the context may never run on this host again. */
  get sentAway(): boolean {
    return this.ctx?.kvm.sent ?? false;
  }

  /** The launched context, or KVM's answer for an ioctl on a VM without one. */
  protected launched(ioctl: string): LaunchedVm {
    if (!this.ctx) throw new KvmError(ioctl, -Errno.ENOTTY);
    return this.ctx;
  }

  /** KVM_CREATE_VM and the SEV INIT of sev_common_kvm_init; nothing is left behind on failure. */
  protected initVm(handle: number, legacyInit: 'KVM_SEV_INIT' | 'KVM_SEV_ES_INIT'): LaunchedVm {
    const vm = kvm(() => KvmSev.createVm(this.host, this.vmType()), launchWording(SevFailure.createVm));
    const initFailed = launchWording(SevFailure.init);
    if (vm.vmType === VmType.DEFAULT) kvm(() => vm.init(legacyInit), initFailed);
    else kvm(() => vm.init('KVM_SEV_INIT2', this.init2Args()), initFailed);
    this.ctx = new LaunchedVm(vm, handle);
    return this.ctx;
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
    return Array.from({ length: this.spec.smp }, (_, i) => ({ eip: i === 0 || apEip === undefined ? BSP_RESET_EIP : apEip, signature }));
  }

  /** CPUID(1).EAX of the vCPU model (`host`: the chip's own). */
  protected vcpuSignature(): number {
    return this.spec.cpu === 'host' ? HOST_SIGNATURE[this.host.generation]! : CPU_MODELS[this.spec.cpu]!;
  }

  /** The guest frames of the VMSA region, in vCPU order. */
  protected vmsaFrames(): number[] {
    const r = this.guest.memory.regions.find((x) => x.name === VMSA_REGION);
    if (!r) throw QmpError.generic('SEV: the machine has no VMSA region');
    return Array.from({ length: this.spec.smp }, (_, i) => r.base / VMSA_SIZE + i);
  }

  /** The SEV secret area as the guest's firmware publishes it (docs/interface.md §8). */
  secretArea(): { base: number; size: number } | undefined {
    const block = readBaseSize(findEntry(this.guest.ovmfEntries, SEV_SECRET_BLOCK_GUID));
    if (block && block.size > 0) return block;
    if (this.lastSecret !== null) return { base: this.lastSecret.gpa, size: this.lastSecret.len };
    return undefined;
  }

  guestStatus(): GuestSevStatus {
    const vm = this.ctx?.kvm;
    if (!vm) return { sev: false, es: false, snp: false, features: 0 };
    return { sev: true, es: vm.es, snp: vm.snp, features: vm.es ? vm.vmsaFeatures : 0 };
  }

  /** DEACTIVATE, DECOMMISSION, ASID back to the pool (guest teardown). */
  destroy(): void {
    this.ctx?.kvm.destroy();
    this.ctx = null;
    this.guest.memory.asid = null;
  }

  /** A context that must not run (a refused first run, a half-received stream): context, ASID and memory go. */
  discard(): void {
    this.destroy();
    this.guest.memory.discard();
  }
}
