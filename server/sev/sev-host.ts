/** The SEV parts of the emulated host that every SEV guest shares, as the VMM sees them: through KVM. */
import type { MemoryController } from '../memory/memory-controller.js';
import type { KvmHost, SevDevice } from '../kvm/kvm-sev.js';

export interface SevHost extends KvmHost {
  /** /dev/sev: the platform status at SEV init. */
  device: SevDevice;
  memory: MemoryController;
  /** CPUID 0x8000001F EBX: C-bit position and physical address bits lost. */
  cbitpos: number;
  reducedPhysBits: number;
  /** The VMM issues KVM_SEV_INIT2 with the SEV VM types (QEMU 9.1 and later). */
  init2: boolean;
}
