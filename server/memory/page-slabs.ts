/**
 * Guest pages live in SharedArrayBuffer slabs so that the encryption helper thread can
 * work on them in place. Slabs are small (64 KiB) to keep sparse guests cheap.
 */
import { PAGE_SIZE } from './sparse-memory.js';

const PAGES_PER_SLAB = 16;

export class PageSlabs {
  private slab: SharedArrayBuffer | null = null;
  private used = PAGES_PER_SLAB;

  alloc(): Buffer {
    if (this.used === PAGES_PER_SLAB) {
      this.slab = new SharedArrayBuffer(PAGES_PER_SLAB * PAGE_SIZE);
      this.used = 0;
    }
    return Buffer.from(this.slab!, this.used++ * PAGE_SIZE, PAGE_SIZE);
  }
}
