/**
 * The memory controller's encryption engine (sevd's model, docs/architecture.md): one key slot per ASID,
 * filled only by the firmware (ACTIVATE) and never readable back. Each 4 KiB page is one
 * AES-128-XTS data unit with the page's system physical address as the tweak; bulk work
 * goes through node:crypto (AES-NI).
 */
import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { tweak } from './xts-tweak.js';
import { CTL_DONE, CTL_HASHED, CTL_NEXT, type EncryptJob } from './encrypt-worker.js';
import { xtsKey, type PageBatch, type XtsKey } from './bulk/page-batch.js';

/** Below this many pages the helper thread is not worth a message. */
const PARALLEL_MIN_PAGES = 64;

export interface PageToEncrypt {
  /** The stored page (4096 bytes, SharedArrayBuffer-backed); encrypted in place. */
  page: Buffer;
  spa: number;
  /** The bytes of the page that are measured (the whole page or a part). */
  measured: Uint8Array;
}

/** A key slot: the VEK (K1 ‖ K2) as a key object for single pages, and as ECB contexts for batches. */
interface KeySlot {
  key: KeyObject;
  batch: XtsKey;
}

export class MemoryController {
  readonly #slots = new Map<number, KeySlot>();
  #nextSpaWindow = 1;

  /** Firmware only: binds a VEK to an ASID. */
  installKey(asid: number, vek: Buffer): void {
    this.#slots.set(asid, { key: createSecretKey(vek), batch: xtsKey(vek) });
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

  private slot(asid: number): KeySlot {
    const k = this.#slots.get(asid);
    if (!k) throw new Error(`no key in the slot of ASID ${asid}`);
    return k;
  }

  private key(asid: number): KeyObject {
    return this.slot(asid).key;
  }

  encryptPage(asid: number, spa: number, plain: Uint8Array): Buffer {
    // XTS over exactly one data unit: update() returns the whole page, final() nothing.
    return createCipheriv('aes-128-xts', this.key(asid), tweak(spa)).update(plain);
  }

  #worker: Worker | undefined;

  /**
   * LAUNCH_UPDATE_DATA's bulk work: `measure` sees each page's plaintext in order, and each
   * page is encrypted in place only after that. Large batches share the encryption with a
   * helper thread (the two cores work at once); the call returns when every page is done.
   */
  measureAndEncrypt(asid: number, pages: PageToEncrypt[], measure: (plain: Uint8Array) => void): void {
    const encryptOne = (p: PageToEncrypt) => p.page.set(this.encryptPage(asid, p.spa, p.page));
    const shared = pages.every((p) => p.page.buffer instanceof SharedArrayBuffer);
    if (pages.length < PARALLEL_MIN_PAGES || !shared) {
      for (const p of pages) {
        measure(p.measured);
        encryptOne(p);
      }
      return;
    }
    const ctl = new Int32Array(new SharedArrayBuffer(12));
    const job: EncryptJob = {
      key: this.key(asid),
      ctl: ctl.buffer as SharedArrayBuffer,
      pages: pages.map((p) => [p.page.buffer as SharedArrayBuffer, p.page.byteOffset, p.spa]),
    };
    this.helper().postMessage(job);
    for (let i = 0; i < pages.length; i++) {
      measure(pages[i]!.measured);
      Atomics.store(ctl, CTL_HASHED, i + 1);
      if ((i & 7) === 7) Atomics.notify(ctl, CTL_HASHED);
    }
    Atomics.notify(ctl, CTL_HASHED);
    // Measuring is faster than encrypting: join the helper on the remaining pages.
    for (let i = Atomics.add(ctl, CTL_NEXT, 1); i < pages.length; i = Atomics.add(ctl, CTL_NEXT, 1)) {
      encryptOne(pages[i]!);
      Atomics.add(ctl, CTL_DONE, 1);
    }
    for (let d = Atomics.load(ctl, CTL_DONE); d < pages.length; d = Atomics.load(ctl, CTL_DONE)) Atomics.wait(ctl, CTL_DONE, d, 50);
  }

  /** Starts the helper thread ahead of the first launch (the daemon does this at start-up). */
  startHelper(): void {
    this.helper();
  }

  /** Ends the helper thread (daemon shutdown); a later batch starts a new one. */
  stopHelper(): void {
    void this.#worker?.terminate();
    this.#worker = undefined;
  }

  private helper(): Worker {
    if (!this.#worker) {
      this.#worker = new Worker(new URL('./encrypt-worker.js', import.meta.url));
      this.#worker.unref();
    }
    return this.#worker;
  }

  decryptPage(asid: number, spa: number, cipher: Uint8Array): Buffer {
    return createDecipheriv('aes-128-xts', this.key(asid), tweak(spa)).update(cipher);
  }

  /** Batched decryption in place of the listed batch slots (pages at `spas`). */
  decryptSlots(asid: number, batch: PageBatch, slots: readonly number[], spas: readonly number[]): void {
    batch.xts('decrypt', this.slot(asid).batch, slots, spas);
  }

  /** Batched encryption of the listed batch slots into `dests` (the stored pages). */
  encryptSlotsTo(asid: number, batch: PageBatch, slots: readonly number[], spas: readonly number[], dests: readonly Uint8Array[]): void {
    batch.xts('encrypt', this.slot(asid).batch, slots, spas, dests);
  }
}

