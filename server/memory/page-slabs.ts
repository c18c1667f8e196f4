/**
 * Guest pages live in SharedArrayBuffer slabs so that the encryption helper thread can
 * work on them in place. Slabs grow from one page to 1 MiB, so sparse guests stay cheap.
 * A page is named by a small integer (slab, index) rather than held as a Buffer object:
 * a 4 GiB guest would otherwise keep a million typed arrays alive for every major GC to
 * walk. Views are made when a page is used.
 */
import { PAGE_SIZE } from './sparse-memory.js';

/** Slabs start at one page and double up to 256 pages. */
const MAX_PAGES_PER_SLAB = 256;

export class PageSlabs {
  private readonly slabs: SharedArrayBuffer[] = [];
  private size = 0;
  private used = 0;

  /** A new zeroed page; returns its id. */
  alloc(): number {
    if (this.used === this.size) {
      this.size = Math.min(MAX_PAGES_PER_SLAB, Math.max(1, this.size * 2));
      this.slabs.push(new SharedArrayBuffer(this.size * PAGE_SIZE));
      this.used = 0;
    }
    return (this.slabs.length - 1) * MAX_PAGES_PER_SLAB + this.used++;
  }

  /** The page's bytes (a view into its slab). */
  view(id: number): Buffer {
    return Buffer.from(this.slabs[Math.floor(id / MAX_PAGES_PER_SLAB)]!, (id % MAX_PAGES_PER_SLAB) * PAGE_SIZE, PAGE_SIZE);
  }
}
