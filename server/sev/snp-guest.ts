/**
 * An SEV-SNP guest as QEMU's sev-snp-guest drives it (target/i386/sev.c): KVM_X86_SNP_VM with
 * KVM_SEV_INIT2, SNP_LAUNCH_START with the policy and GOSVW, every guest page private, the
 * flash and OVMF's SNP metadata sections through KVM_SEV_SNP_LAUNCH_UPDATE (looping over
 * KVM's partial progress), and on the first run KVM_SEV_SNP_LAUNCH_FINISH, which adds the
 * VMSAs, with the ID block, ID auth and host data. Reports are requested from inside the
 * guest; the host's view of its memory is ciphertext. The shared part is confidential-guest.ts.
 */
import { QmpError } from '../errors/qmp-error.js';
import { VmType, type SevInitArgs, type VmTypeCode } from '../kvm/kvm-sev.js';
import { cpuModelHasAvx512, SevFeature } from '../../abi/vmsa.js';
import { cpuidMismatchLines, encodeCpuidPage } from '../../abi/snp/cpuid.js';
import { vcpuCpuid } from './vcpu-cpuid.js';
import { SnpPageType, type SnpPageTypeCode } from '../../abi/snp/launch-digest.js';
import { parseSevMetadata, SectionType, sectionPageType } from '../../abi/snp/ovmf-metadata.js';
import { findEntry, readBaseSize, SEV_HASH_TABLE_BLOCK_GUID } from '../../abi/ovmf-table.js';
import { buildKernelHashesTable } from '../../abi/kernel-hashes.js';
import { SnpPolicy } from '../../abi/policy.js';
import type { KernelImages, SnpSpec } from './guest-spec-kinds.js';
import { ConfidentialGuestBase } from './confidential-guest.js';
import type { LaunchedVm } from './launched-vm.js';
import { kvmCall as kvm, SevFailure } from './qemu-errors.js';

export class SnpGuest extends ConfidentialGuestBase<SnpSpec> {
  readonly kind = 'sev-snp';
  /** Where OVMF keeps the secrets page (the guest reads its VMPCKs there). */
  secretsGpa: number | null = null;

  /** The certificate table the host hands out with extended reports (certs-filename). */
  get certTable(): Buffer | null {
    return this.spec.certTable;
  }

  get es(): boolean {
    return true;
  }

  get handle(): number {
    return this.ctx?.handle ?? 0;
  }

  get snpPolicy(): bigint {
    return this.spec.policy;
  }

  protected vmType(): VmTypeCode {
    return VmType.SNP;
  }

  protected init2Args(): SevInitArgs {
    return this.spec.secureTsc ? { vmsaFeatures: SevFeature.SECURE_TSC } : {};
  }

  /** KVM's partial progress: call again with what is left until nothing is. */
  private update(ctx: LaunchedVm, gpa: number, len: number, type: SnpPageTypeCode): void {
    for (let range = { gpa, len }; range.len > 0; ) range = kvm(() => ctx.kvm.snpLaunchUpdate(this.guest.memory, range, type));
  }

  /** Machine init: the SNP context and every launch page but the VMSAs. Nothing left behind on failure. */
  launch(): void {
    const ctx = this.initVm(0, 'KVM_SEV_ES_INIT');
    const vm = ctx.kvm;
    try {
      ctx.handle = kvm(() => vm.snpLaunchStart({ policy: this.spec.policy, gosvw: this.spec.gosvw }));
      ctx.state = 'launch-update';
      const mem = this.guest.memory;
      mem.asid = vm.asid;
      // guest_memfd: all guest memory starts private; so does the flash.
      mem.setDefaultPrivate();
      const flash = mem.regions.find((r) => r.name === 'system.flash0');
      if (flash) {
        mem.setPrivate(flash.base, flash.size, true);
        this.update(ctx, flash.base, flash.size, SnpPageType.NORMAL);
      }
      const hashed = this.spec.kernelHashes;
      const sections = parseSevMetadata(this.guest.config.firmware, this.guest.ovmfEntries);
      if (hashed && !sections.some((s) => s.type === SectionType.SNP_KERNEL_HASHES)) {
        throw QmpError.generic('SEV: kernel specified but guest firmware has no hashes table GUID');
      }
      for (const s of sections) {
        const type = sectionPageType(s.type, hashed !== null);
        if (s.type === SectionType.SNP_SECRETS) this.secretsGpa = s.gpa;
        if (s.type === SectionType.SNP_KERNEL_HASHES && hashed) this.writeKernelHashes(s.gpa, s.size, hashed);
        if (s.type === SectionType.CPUID) this.updateCpuid(ctx, s.gpa, s.size);
        else this.update(ctx, s.gpa, s.size, type);
      }
    } catch (e) {
      this.destroy();
      throw e;
    }
  }

  /**
   * The CPUID page from the vCPU model. If the firmware refuses it, it has written back what
   * the chip allows: QEMU reports the differences entry by entry and the launch fails.
   */
  private updateCpuid(ctx: LaunchedVm, gpa: number, size: number): void {
    const mem = this.guest.memory;
    const provided = encodeCpuidPage(vcpuCpuid({
      signature: this.vcpuSignature(), avx512: cpuModelHasAvx512(this.spec.cpu, this.host.generation), smp: this.spec.smp,
      cbitpos: this.host.cbitpos, reducedPhysBits: this.host.reducedPhysBits,
    }), size);
    mem.write(gpa, provided);
    try {
      this.update(ctx, gpa, size, SnpPageType.CPUID);
    } catch (e) {
      if (!(e instanceof QmpError)) throw e;
      throw QmpError.generic(SevFailure.cpuidPage(e.desc, cpuidMismatchLines(provided, mem.read(gpa, size))));
    }
  }

  private writeKernelHashes(gpa: number, size: number, images: KernelImages): void {
    const area = readBaseSize(findEntry(this.guest.ovmfEntries, SEV_HASH_TABLE_BLOCK_GUID));
    if (!area || area.base < gpa || area.base >= gpa + size) throw QmpError.generic('SEV: kernel specified but guest firmware has no hashes table GUID');
    this.guest.memory.write(gpa, Buffer.alloc(size));
    this.guest.memory.write(area.base, buildKernelHashesTable(images.kernel, images.initrd, images.append));
  }

  /**
   * The first run: LAUNCH_FINISH with the VMSAs. A refusal (ID block, policy, signature)
   * ends the launch: QEMU exits, sevd drops the context, ASID and memory.
   */
  beforeFirstRun(): void {
    const ctx = this.ctx;
    if (!ctx) throw QmpError.generic('SEV: the guest has no finished encryption context');
    if (ctx.state !== 'launch-update') return;
    const s = this.spec;
    try {
      kvm(() => ctx.kvm.snpLaunchFinish(this.guest.memory, this.vcpuResets(), this.vmsaFrames(), {
        idBlock: s.idBlock, idAuth: s.idAuth, authorKeyEn: s.authorKeyEnabled, hostData: s.hostData, vcekDisabled: s.vcekDisabled,
      }));
    } catch (e) {
      this.discard();
      throw e;
    }
    ctx.state = 'running';
  }

  /** The host never decrypts an SNP guest (no SNP debug support here): what is stored. */
  hostRead(gpa: number, len: number): Buffer {
    return this.guest.memory.read(gpa, len);
  }

  /** A guest message through the firmware (the guest's SNP_GUEST_REQUEST); KvmError on refusal. */
  guestRequest(message: Buffer): Buffer {
    const ctx = this.ctx;
    if (!ctx || ctx.state !== 'running') throw QmpError.generic('SEV-SNP guest is not running');
    return ctx.kvm.snpGuestRequest(message);
  }

  queryMembers(): Record<string, string | number> {
    return { 'sev-type': 'sev-snp', 'snp-policy': Number(this.spec.policy) };
  }

  infoLines(): string[] {
    const p = this.spec.policy;
    return [
      'SEV type: sev-snp',
      `state: ${this.state}`,
      `build: ${this.api.build}`,
      `api version: ${this.api.major}.${this.api.minor}`,
      `debug: ${p & SnpPolicy.DEBUG ? 'on' : 'off'}`,
      `SMT allowed: ${p & SnpPolicy.SMT ? 'on' : 'off'}`,
    ];
  }
}
