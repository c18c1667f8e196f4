/**
 * An SEV or SEV-ES guest as QEMU's sev-guest drives it (target/i386/sev.c): the launch flow
 * at machine init (LAUNCH_START, LAUNCH_UPDATE_DATA of the firmware and the kernel hashes,
 * for SEV-ES the vCPUs' VMSAs, LAUNCH_MEASURE), LAUNCH_FINISH on the first run, what the
 * host may do with the guest owner's consent (secret injection, attestation, DBG_DECRYPT)
 * and migration (SEND_* / RECEIVE_*). The shared part is confidential-guest.ts.
 */
import { QmpError } from '../errors/qmp-error.js';
import { Policy } from '../../abi/policy.js';
import { KvmError, VmType, type IncomingPacket, type OutgoingPacket, type SendStartInput, type VmTypeCode } from '../kvm/kvm-sev.js';
import { buildKernelHashesTable, PADDED_TABLE_SIZE } from '../../abi/kernel-hashes.js';
import { findEntry, readBaseSize, SEV_HASH_TABLE_BLOCK_GUID } from '../../abi/ovmf-table.js';
import type { Guest } from '../guest/guest.js';
import type { SevHost } from './sev-host.js';
import type { KernelImages, SevSpec } from './guest-spec-kinds.js';
import { ConfidentialGuestBase } from './confidential-guest.js';
import type { LaunchedVm } from './launched-vm.js';
import { kvmCall as kvm, queriedLength } from './qemu-errors.js';

export class SevGuest extends ConfidentialGuestBase<SevSpec> {
  readonly kind: 'sev' | 'sev-es';
  /** The guest policy: the spec's, or the one a migration stream brought (RECEIVE_START). */
  policy: number;
  /** base64 of MEASURE ‖ MNONCE, taken once at machine init. */
  measurement: string | null = null;

  constructor(guest: Guest, spec: SevSpec, host: SevHost) {
    super(guest, spec, host);
    this.kind = spec.kind;
    this.policy = spec.policy;
    if (spec.policy & Policy.ES && !this.platformEs) {
      throw QmpError.generic('sev_common_kvm_init: guest policy requires SEV-ES, but host SEV-ES support unavailable');
    }
  }

  get es(): boolean {
    return (this.policy & Policy.ES) !== 0;
  }

  get handle(): number {
    return this.ctx?.handle ?? this.spec.handle;
  }

  /** QEMU's sev_kvm_type: legacy type before 9.1 or with legacy-vm-type, else SEV / SEV-ES. */
  protected vmType(): VmTypeCode {
    if (!this.host.init2 || this.spec.legacyVmType) return VmType.DEFAULT;
    return this.es ? VmType.SEV_ES : VmType.SEV;
  }

  protected init2Args(): Record<string, never> {
    return {};
  }

  private initSevVm(): LaunchedVm {
    return this.initVm(this.spec.handle, this.es ? 'KVM_SEV_ES_INIT' : 'KVM_SEV_INIT');
  }

  launch(): void {
    const { godh, session } = this.spec;
    const vcpus = this.es ? this.vcpuResets() : [];
    const ctx = this.initSevVm();
    const vm = ctx.kvm;
    try {
      ctx.handle = kvm(() => vm.launchStart({ handle: this.spec.handle, policy: this.policy, godh, session }));
      ctx.state = 'launch-update';
      const mem = this.guest.memory;
      mem.asid = vm.asid;
      mem.setDefaultPrivate();
      const flash = mem.regions.find((r) => r.name === 'system.flash0');
      if (flash) kvm(() => vm.launchUpdateData(mem, flash.base, flash.size));
      if (this.spec.kernelHashes) this.measureKernelHashes(ctx, this.spec.kernelHashes);
      // SEV-ES: the vCPUs' register state is measured after all data (machine-init-done).
      if (this.es) kvm(() => vm.launchUpdateVmsa(mem, vcpus, this.vmsaFrames()));
      const blob = kvm(() => vm.launchMeasure(queriedLength(() => vm.launchMeasure(0), 'len')));
      this.measurement = blob.toString('base64');
      ctx.state = 'launch-secret';
    } catch (e) {
      this.destroy();
      throw e;
    }
  }

  private measureKernelHashes(ctx: LaunchedVm, images: KernelImages): void {
    const area = readBaseSize(findEntry(this.guest.ovmfEntries, SEV_HASH_TABLE_BLOCK_GUID));
    if (!area) throw QmpError.generic('SEV: kernel specified but guest firmware has no hashes table GUID');
    if (area.base === 0 || area.size < PADDED_TABLE_SIZE) {
      throw QmpError.generic(`SEV: guest firmware hashes table area is invalid (base=0x${area.base.toString(16)} size=0x${area.size.toString(16)})`);
    }
    this.guest.memory.write(area.base, buildKernelHashesTable(images.kernel, images.initrd, images.append));
    kvm(() => ctx.kvm.launchUpdateData(this.guest.memory, area.base, PADDED_TABLE_SIZE));
  }

  /**
   * First transition to running: LAUNCH_FINISH. A guest without a finished context (an
   * incoming one whose stream never got through RECEIVE_FINISH) must not run unencrypted.
   */
  beforeFirstRun(): void {
    const ctx = this.ctx;
    if (ctx?.state === 'launch-secret') {
      kvm(() => ctx.kvm.launchFinish());
      ctx.state = 'running';
    } else if (this.state === 'uninit' || this.state === 'receive-update') {
      throw QmpError.generic('SEV: the guest has no finished encryption context');
    }
  }

  /** LAUNCH_SECRET through KVM (sev-inject-launch-secret); KvmError for QEMU's wording. */
  launchSecret(hdr: Uint8Array, gpa: number, trans: Uint8Array): void {
    this.launched('KVM_SEV_LAUNCH_SECRET').kvm.launchSecret(hdr, this.guest.memory, gpa, trans);
    this.lastSecret = { gpa, len: trans.length };
  }

  /** KVM_SEV_GET_ATTESTATION_REPORT; `len` 0 is the length query. KvmError for QEMU's wording. */
  attestationReport(mnonce: Uint8Array, len: number): Buffer {
    return this.launched('KVM_SEV_GET_ATTESTATION_REPORT').kvm.attestationReport(mnonce, len);
  }

  /**
   * Source (QEMU §17.1): SEND_START for the target's certificates, the session length
   * queried first as QEMU does. Failures carry the firmware's text.
   */
  sendStart(target: SendStartInput): { session: Buffer; policy: number } {
    const ctx = kvm(() => this.launched('KVM_SEV_SEND_START'));
    const len = kvm(() => queriedLength(() => ctx.kvm.sendStart(target, null), 'sessionLen'));
    const out = kvm(() => ctx.kvm.sendStart(target, { len }));
    ctx.state = 'send-update';
    return out;
  }

  sendUpdateData(packets: readonly OutgoingPacket[]): void {
    kvm(() => this.launched('KVM_SEV_SEND_UPDATE_DATA').kvm.sendUpdateData(this.guest.memory, packets));
  }

  /** SEND_FINISH: QEMU shows running again; the firmware context is SENT. */
  sendFinish(): void {
    const ctx = kvm(() => this.launched('KVM_SEV_SEND_FINISH'));
    kvm(() => ctx.kvm.sendFinish());
    ctx.state = 'running';
  }

  sendCancel(): void {
    const ctx = kvm(() => this.launched('KVM_SEV_SEND_CANCEL'));
    kvm(() => ctx.kvm.sendCancel());
    ctx.state = 'running';
  }

  /** Destination (QEMU §17.2): RECEIVE_START with the stream's policy, PDH and session, then ACTIVATE. */
  receiveStart(policy: number, sourcePdh: Buffer, session: Buffer): void {
    const ctx = this.initSevVm();
    const vm = ctx.kvm;
    try {
      ctx.handle = kvm(() => vm.receiveStart({ handle: this.spec.handle, policy, pdh: sourcePdh, session }));
      this.policy = policy;
      ctx.state = 'receive-update';
      this.guest.memory.asid = vm.asid;
      this.guest.memory.setDefaultPrivate();
    } catch (e) {
      this.destroy();
      throw e;
    }
  }

  receiveUpdateData(packets: readonly IncomingPacket[]): void {
    kvm(() => this.launched('KVM_SEV_RECEIVE_UPDATE_DATA').kvm.receiveUpdateData(this.guest.memory, packets));
  }

  /**
   * Destination, at the end of the stream (sevd's choice: the series waits for the first
   * run): RECEIVE_FINISH before the source is acknowledged, so a refusal fails the migration
   * while the source still has the guest.
   */
  receiveFinish(): void {
    const ctx = kvm(() => this.launched('KVM_SEV_RECEIVE_FINISH'));
    kvm(() => ctx.kvm.receiveFinish());
    ctx.state = 'running';
  }

  /** A half-received guest is dropped (context, ASID, memory) and is the spec's again. */
  override discard(): void {
    super.discard();
    this.policy = this.spec.policy;
  }

  /** The host's view for dumps: DBG_DECRYPT when the policy allows debugging, else ciphertext. */
  hostRead(gpa: number, len: number): Buffer {
    const mem = this.guest.memory;
    const vm = this.ctx?.kvm;
    if (this.policy & Policy.NODBG || !vm || vm.asid === null || !mem.isMapped(gpa)) return mem.read(gpa, len);
    const start = gpa - (gpa % 16);
    const end = Math.ceil((gpa + len) / 16) * 16;
    if (!mem.regionOf(start, end - start)) return mem.read(gpa, len);
    try {
      const plain = vm.dbgDecrypt(mem, start, end - start);
      return plain.subarray(gpa - start, gpa - start + len);
    } catch (e) {
      // Refused (a VMSA page, a context that cannot debug): the host sees what is stored.
      if (e instanceof KvmError) return mem.read(gpa, len);
      throw e;
    }
  }

  queryMembers(modern: boolean): Record<string, string | number> {
    const branch = { policy: this.policy, handle: this.handle };
    return modern ? { 'sev-type': 'sev', ...branch } : branch;
  }

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
