/** The SEV parts of the emulated host that every SEV guest shares. */
import type { GuestFirmware } from '../firmware/guest-firmware.js';
import type { SnpGuestFirmware } from '../firmware/snp-guest-firmware.js';
import type { SevDevice } from '../firmware/sev-device.js';
import type { MemoryController } from '../memory/memory-controller.js';
import type { AsidPool } from '../kvm/asid-pool.js';
import type { SendReceive } from '../firmware/send-receive.js';
import type { Generation } from '../firmware/emulated-root.js';

export interface SevHost {
  device: SevDevice;
  firmware: GuestFirmware;
  /** The SNP guest commands (milan and later). */
  snpFirmware: SnpGuestFirmware;
  /** SEND_* / RECEIVE_* (migration). */
  sendReceive: SendReceive;
  memory: MemoryController;
  asids: AsidPool;
  /** CPUID 0x8000001F EBX: C-bit position and physical address bits lost. */
  cbitpos: number;
  reducedPhysBits: number;
  /** The emulated chip's generation (what KVM and the firmware support). */
  generation: Generation;
  /** The VMM issues KVM_SEV_INIT2 with the SEV VM types (QEMU 9.1 and later). */
  init2: boolean;
}
