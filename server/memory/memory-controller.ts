/**
 * The memory controller's encryption engine (sev-firmware.md §10): one key slot per ASID,
 * filled only by the firmware (ACTIVATE) and never readable back. Each 4 KiB page is one
 * AES-128-XTS data unit with the page's system physical address as the tweak; bulk work
 * goes through node:crypto (AES-NI).
 */
import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject } from 'node:crypto';
import { PAGE_SIZE } from './sparse-memory.js';

export class MemoryController {
  /** ASID → VEK (32 bytes: K1 ‖ K2) as a key object (cheaper per cipher than raw bytes). */
  readonly #slots = new Map<number, KeyObject>();
  #nextSpaWindow = 1;

  /** Firmware only: binds a VEK to an ASID. */
  installKey(asid: number, vek: Buffer): void {
    this.#slots.set(asid, createSecretKey(vek));
  }

  removeKey(asid: number): void {
    this.#slots.delete(asid);
  }

  hasKey(asid: number): boolean {
    return this.#slots.has(asid);
  }

  /** Each guest's memory gets its own 1 TiB window of emulated system physical addresses. */
  allocateSpaWindow(): number {
    return this.#nextSpaWindow++ * 2 ** 40;
  }

  private key(asid: number): KeyObject {
    const k = this.#slots.get(asid);
    if (!k) throw new Error(`no key in the slot of ASID ${asid}`);
    return k;
  }

  encryptPage(asid: number, spa: number, plain: Uint8Array): Buffer {
    // XTS over exactly one data unit: update() returns the whole page, final() nothing.
    return createCipheriv('aes-128-xts', this.key(asid), tweak(spa)).update(plain);
  }

  decryptPage(asid: number, spa: number, cipher: Uint8Array): Buffer {
    return createDecipheriv('aes-128-xts', this.key(asid), tweak(spa)).update(cipher);
  }
}

/** The page's SPA as a 16-byte little-endian integer. */
export function tweak(spa: number): Buffer {
  if (spa % PAGE_SIZE !== 0) throw new Error('tweak SPA must be page aligned');
  const t = Buffer.alloc(16);
  t.writeBigUInt64LE(BigInt(spa), 0);
  return t;
}
