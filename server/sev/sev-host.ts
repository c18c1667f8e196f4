/** The SEV parts of the emulated host that every SEV guest shares. */
import type { GuestFirmware } from '../firmware/guest-firmware.js';
import type { SevDevice } from '../firmware/sev-device.js';
import type { MemoryController } from '../memory/memory-controller.js';
import type { AsidPool } from './asid-pool.js';
import type { SendReceive } from '../firmware/send-receive.js';

export interface SevHost {
  device: SevDevice;
  firmware: GuestFirmware;
  /** SEND_* / RECEIVE_* (migration). */
  sendReceive: SendReceive;
  memory: MemoryController;
  asids: AsidPool;
  /** CPUID 0x8000001F EBX: C-bit position and physical address bits lost. */
  cbitpos: number;
  reducedPhysBits: number;
}
