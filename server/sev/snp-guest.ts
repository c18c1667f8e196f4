/**
 * An SEV-SNP guest as QEMU's sev-snp-guest drives it (target/i386/sev.c): KVM_X86_SNP_VM with
 * KVM_SEV_INIT2, SNP_LAUNCH_START with the policy and GOSVW, every guest page private, the
 * flash and OVMF's SNP metadata sections through KVM_SEV_SNP_LAUNCH_UPDATE (looping over
 * KVM's partial progress), and on the first run KVM_SEV_SNP_LAUNCH_FINISH, which adds the
 * VMSAs, with the ID block, ID auth and host data. Reports are requested from inside the
 * guest; the host's view of its memory is ciphertext.
 */
import { readWhole } from '../confinement/paths.js';
import { QmpError } from '../qmp/errors.js';
import { strerror } from '../util/strerror.js';
import { SevGuest, kvm, type SevGuestSpec, type SnpGuestSpec } from './sev-guest.js';
import { VmType } from '../kvm/kvm-sev.js';
import { cpuModelHasAvx512, SevFeature } from '../../abi/vmsa.js';
import { cpuidMismatchLines, encodeCpuidPage } from '../../abi/snp/cpuid.js';
import { vcpuCpuid } from './vcpu-cpuid.js';
import { SnpPageType, type SnpPageTypeCode } from '../../abi/snp/launch-digest.js';
import { parseSevMetadata, SectionType, sectionPageType } from '../../abi/snp/ovmf-metadata.js';
import { findEntry, readBaseSize, SEV_HASH_TABLE_BLOCK_GUID } from '../../abi/ovmf-table.js';
import { buildKernelHashesTable } from '../../abi/kernel-hashes.js';
import { SnpPolicy } from '../../abi/policy.js';
import type { Guest } from '../guest/guest.js';
import type { SevHost } from './sev-host.js';

export class SnpGuest extends SevGuest {
  readonly snpSpec: SnpGuestSpec;
  /** The certificate table the host hands out with extended reports (certs-filename). */
  readonly certTable: Buffer | null;
  /** Where OVMF keeps the secrets page (the guest reads its VMPCKs there). */
  secretsGpa: number | null = null;

  constructor(guest: Guest, spec: SevGuestSpec, host: SevHost) {
    super(guest, spec, host);
    this.snpSpec = spec.snp!;
    this.handle = 0;
    let table: Buffer | null = null;
    if (this.snpSpec.certsFile) {
      try {
        table = readWhole(guest.config.files, 'inputs', this.snpSpec.certsFile);
      } catch (e) {
        if (e instanceof QmpError) throw e;
        throw QmpError.generic(`SEV-SNP: failed to read certificate table '${this.snpSpec.certsFile}': ${strerror(e)}`);
      }
    }
    this.certTable = table;
  }

  override get es(): boolean {
    return true;
  }

  get snpPolicy(): bigint {
    return this.snpSpec.policy;
  }

  protected override vmType(): number {
    return VmType.SNP;
  }

  protected override init2Args(): { vmsaFeatures?: number } {
    return this.snpSpec.secureTsc ? { vmsaFeatures: SevFeature.SECURE_TSC } : {};
  }

  /** KVM's partial progress: call again with what is left until nothing is. */
  private update(gpa: number, len: number, type: SnpPageTypeCode): void {
    const vm = this.kvmSev!;
    for (let range = { gpa, len }; range.len > 0; ) range = kvm(() => vm.snpLaunchUpdate(this.guest.memory, range, type));
  }

  /** Machine init: the SNP context and every launch page but the VMSAs. Nothing left behind on failure. */
  override launch(): void {
    const vm = this.initVm();
    try {
      this.handle = kvm(() => vm.snpLaunchStart({ policy: this.snpSpec.policy, gosvw: this.snpSpec.gosvw }));
      this.state = 'launch-update';
      const mem = this.guest.memory;
      mem.asid = vm.asid;
      // guest_memfd: all guest memory starts private; so does the flash.
      mem.setDefaultPrivate();
      const flash = mem.regions.find((r) => r.name === 'system.flash0');
      if (flash) {
        mem.setPrivate(flash.base, flash.size, true);
        this.update(flash.base, flash.size, SnpPageType.NORMAL);
      }
      const entries = this.guest.ovmfEntries;
      const withHashes = this.spec.kernelHashes && this.guest.config.kernel !== null;
      const sections = parseSevMetadata(this.guest.config.firmware, entries);
      if (withHashes && !sections.some((s) => s.type === SectionType.SNP_KERNEL_HASHES)) {
        throw QmpError.generic('SEV: kernel specified but guest firmware has no hashes table GUID');
      }
      for (const s of sections) {
        const type = sectionPageType(s.type, withHashes);
        if (s.type === SectionType.SNP_SECRETS) this.secretsGpa = s.gpa;
        if (s.type === SectionType.SNP_KERNEL_HASHES && withHashes) this.writeKernelHashes(s.gpa, s.size);
        if (s.type === SectionType.CPUID) this.updateCpuid(s.gpa, s.size);
        else this.update(s.gpa, s.size, type);
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
  private updateCpuid(gpa: number, size: number): void {
    const mem = this.guest.memory;
    const provided = encodeCpuidPage(vcpuCpuid({
      signature: this.vcpuSignature(), avx512: cpuModelHasAvx512(this.spec.cpu, this.host.generation), smp: this.spec.smp,
      cbitpos: this.host.cbitpos, reducedPhysBits: this.host.reducedPhysBits,
    }), size);
    mem.write(gpa, provided);
    try {
      this.update(gpa, size, SnpPageType.CPUID);
    } catch (e) {
      const lines = cpuidMismatchLines(provided, mem.read(gpa, size));
      const err = e instanceof QmpError ? e.desc : String(e);
      throw QmpError.generic([err, ...lines, 'SEV-SNP: failed update CPUID page'].join('\n'));
    }
  }

  private writeKernelHashes(gpa: number, size: number): void {
    const area = readBaseSize(findEntry(this.guest.ovmfEntries, SEV_HASH_TABLE_BLOCK_GUID));
    if (!area || area.base < gpa || area.base >= gpa + size) throw QmpError.generic('SEV: kernel specified but guest firmware has no hashes table GUID');
    const c = this.guest.config;
    const read = (p: string | null) => (p === null ? null : readWhole(c.files, 'images', p));
    this.guest.memory.write(gpa, Buffer.alloc(size));
    this.guest.memory.write(area.base, buildKernelHashesTable(read(c.kernel)!, read(c.initrd), c.append));
  }

  /**
   * The first run: LAUNCH_FINISH with the VMSAs. A refusal (ID block, policy, signature)
   * ends the launch: QEMU exits, sevd drops the context, ASID and memory.
   */
  override beforeFirstRun(): void {
    if (this.state === 'uninit') throw QmpError.generic('SEV: the guest has no finished encryption context');
    if (this.state !== 'launch-update') return;
    const vm = this.kvmSev!;
    try {
      kvm(() => vm.snpLaunchFinish(this.guest.memory, this.vcpuResets(), this.vmsaFrames(), {
        idBlock: this.snpSpec.idBlock, idAuth: this.snpSpec.idAuth, authorKeyEn: this.snpSpec.authorKeyEnabled,
        hostData: this.snpSpec.hostData, vcekDisabled: this.snpSpec.vcekDisabled,
      }));
    } catch (e) {
      this.destroy();
      this.guest.memory.discard();
      throw e;
    }
    this.state = 'running';
  }

  /** The host never decrypts an SNP guest (no SNP debug support here): what is stored. */
  override hostRead(gpa: number, len: number): Buffer {
    return this.guest.memory.read(gpa, len);
  }

  override guestStatus(): { sev: boolean; es: boolean; snp: boolean; features: number } {
    const on = this.kvmSev !== null;
    return { sev: on, es: on, snp: on, features: on ? this.kvmSev!.vmsaFeatures : 0 };
  }

  /** A guest message through the firmware (the guest's SNP_GUEST_REQUEST); KvmError on refusal. */
  guestRequest(message: Buffer): Buffer {
    if (!this.kvmSev || this.state !== 'running') throw QmpError.generic('SEV-SNP guest is not running');
    return this.kvmSev.snpGuestRequest(message);
  }

  override infoLines(): string[] {
    const p = this.snpSpec.policy;
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
