/**
 * A batch of up to CAPACITY page slots in WebAssembly memory, and the batched forms of the
 * two ciphers pages go through: AES-128-XTS (one 4 KiB data unit per page, tweak = SPA) and
 * AES-128-CTR (one stream per packet, fresh IV each). Per-page node:crypto contexts cost more
 * than the AES itself; here each batch makes one ECB call per key (AES-NI) and the WASM
 * kernels do the masks, counters and XORs. Results equal node's aes-128-xts / aes-128-ctr
 * byte for byte (test/unit/page-batch.test.ts).
 */
import { createCipheriv, createDecipheriv, type Cipher, type Decipher } from 'node:crypto';
import { instantiateKernels, type Kernels } from './wasm-kernels.js';

const PAGE = 4096;

/** ECB contexts of one XTS key (K1 ‖ K2): reused for every batch (ECB keeps no state). */
export interface XtsKey {
  k1Encrypt: Cipher;
  k1Decrypt: Decipher;
  k2Encrypt: Cipher;
}

function ecb(key: Uint8Array, decrypt = false): Cipher {
  const c = decrypt ? createDecipheriv('aes-128-ecb', key, null) : createCipheriv('aes-128-ecb', key, null);
  c.setAutoPadding(false);
  return c as Cipher;
}

export function xtsKey(vek: Uint8Array): XtsKey {
  return { k1Encrypt: ecb(vek.subarray(0, 16)), k1Decrypt: ecb(vek.subarray(0, 16), true) as Decipher, k2Encrypt: ecb(vek.subarray(16, 32)) };
}

/** The ECB context of an AES-128-CTR key (the counter blocks are encrypted in one call). */
export function ctrKey(key: Uint8Array): Cipher {
  return ecb(key);
}

export interface CtrItem {
  slot: number;
  /** Byte range of the slot the stream covers (multiples of 16). */
  off: number;
  len: number;
  iv: Uint8Array;
}

export class PageBatch {
  static readonly CAPACITY = 16;
  readonly #k: Kernels;
  readonly #u8: Uint8Array;
  readonly #dv: DataView;
  // Regions: tweaks, masks, XTS work, the slots, counter blocks, IVs.
  readonly #tw = 0;
  readonly #m = PAGE;
  readonly #x = this.#m + PageBatch.CAPACITY * PAGE;
  readonly #w = this.#x + PageBatch.CAPACITY * PAGE;
  readonly #c = this.#w + PageBatch.CAPACITY * PAGE;
  readonly #iv = this.#c + PageBatch.CAPACITY * PAGE;

  constructor() {
    const bytes = this.#iv + 16 * PageBatch.CAPACITY;
    const { kernels, memory } = instantiateKernels(bytes);
    this.#k = kernels;
    this.#u8 = new Uint8Array(memory.buffer);
    this.#dv = new DataView(memory.buffer);
  }

  /** Slot i: 4096 bytes, plaintext while a batch is worked on. */
  slot(i: number): Uint8Array {
    return this.#u8.subarray(this.#w + i * PAGE, this.#w + (i + 1) * PAGE);
  }

  /** T = E_K2(SPA) of each listed page, then its 256 masks T·α^j (region #m, in list order). */
  #masks(key: XtsKey, spas: readonly number[]): void {
    const n = spas.length;
    for (let j = 0; j < n; j++) {
      const at = this.#tw + 16 * j;
      this.#dv.setUint32(at, spas[j]! % 2 ** 32, true);
      this.#dv.setUint32(at + 4, Math.floor(spas[j]! / 2 ** 32), true);
      this.#dv.setBigUint64(at + 8, 0n, true);
    }
    this.#u8.set(key.k2Encrypt.update(this.#u8.subarray(this.#tw, this.#tw + 16 * n)), this.#tw);
    this.#k.xts_masks(this.#tw, this.#m, n);
  }

  /** XTS over the listed slots (whole pages); the result goes back to the slot or to `dests[j]`. */
  xts(direction: 'encrypt' | 'decrypt', key: XtsKey, slots: readonly number[], spas: readonly number[], dests?: readonly Uint8Array[]): void {
    const n = slots.length;
    if (n === 0) return;
    if (n > PageBatch.CAPACITY || spas.length !== n) throw new RangeError('bad XTS batch');
    this.#masks(key, spas);
    for (let j = 0; j < n; j++) this.#k.xor(this.#x + j * PAGE, this.#w + slots[j]! * PAGE, this.#m + j * PAGE, PAGE);
    const aes = direction === 'encrypt' ? key.k1Encrypt : key.k1Decrypt;
    this.#u8.set(aes.update(this.#u8.subarray(this.#x, this.#x + n * PAGE)), this.#x);
    for (let j = 0; j < n; j++) {
      if (dests) {
        this.#k.xor(this.#x + j * PAGE, this.#x + j * PAGE, this.#m + j * PAGE, PAGE);
        dests[j]!.set(this.#u8.subarray(this.#x + j * PAGE, this.#x + (j + 1) * PAGE));
      } else {
        this.#k.xor(this.#w + slots[j]! * PAGE, this.#x + j * PAGE, this.#m + j * PAGE, PAGE);
      }
    }
  }

  /** AES-CTR in place over each item's slot range (encryption and decryption are the same). */
  ctr(key: Cipher, items: readonly CtrItem[]): void {
    if (items.length > PageBatch.CAPACITY) throw new RangeError('bad CTR batch');
    let total = 0;
    for (let j = 0; j < items.length; j++) {
      const it = items[j]!;
      if (it.off % 16 || it.len % 16 || it.off + it.len > PAGE || it.iv.length !== 16) throw new RangeError('bad CTR item');
      this.#u8.set(it.iv, this.#iv + 16 * j);
      this.#k.ctr_blocks(this.#iv + 16 * j, this.#c + total, it.len / 16);
      total += it.len;
    }
    if (total === 0) return;
    this.#u8.set(key.update(this.#u8.subarray(this.#c, this.#c + total)), this.#c);
    let at = 0;
    for (const it of items) {
      const s = this.#w + it.slot * PAGE + it.off;
      this.#k.xor(s, s, this.#c + at, it.len);
      at += it.len;
    }
  }
}

let shared: PageBatch | undefined;

/** The process's batch (every caller is synchronous on the main thread). */
export function pageBatch(): PageBatch {
  return (shared ??= new PageBatch());
}
