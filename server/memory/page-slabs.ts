/**
 * Guest pages live in SharedArrayBuffer slabs so that the encryption helper thread can
 * work on them in place. Slabs grow from one page to 1 MiB, so sparse guests stay cheap.
 */
import { PAGE_SIZE } from './sparse-memory.js';

/** Slabs start at one page and double up to 256 pages, so a guest that touches little pays little. */
const MAX_PAGES_PER_SLAB = 256;

export class PageSlabs {
  private slab: SharedArrayBuffer | null = null;
  private size = 0;
  private used = 0;

  alloc(): Buffer {
    if (this.used === this.size) {
      this.size = Math.min(MAX_PAGES_PER_SLAB, Math.max(1, this.size * 2));
      this.slab = new SharedArrayBuffer(this.size * PAGE_SIZE);
      this.used = 0;
    }
    return Buffer.from(this.slab!, this.used++ * PAGE_SIZE, PAGE_SIZE);
  }
}
