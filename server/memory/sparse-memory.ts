/**
 * Guest physical memory as a sparse set of 4 KiB pages: a page that was never written
 * costs nothing and reads as zeros, so a 4 GiB guest that touched nothing is free.
 * This is the "stored bytes" layer; the memory-encryption core sits on top of it.
 */
import { PageSlabs } from './page-slabs.js';

export const PAGE_SIZE = 4096;
export const PAGE_SHIFT = 12;

export interface Region {
  name: string;
  /** Guest physical address of the first byte. */
  base: number;
  size: number;
}

export class SparseMemory {
  /** pfn → page id in the slabs. */
  private readonly pages = new Map<number, number>();
  private slabs = new PageSlabs();
  /** Pages written since tracking started (migration's dirty log), or null when not tracking. */
  dirty: Set<number> | null = null;

  constructor(readonly regions: readonly Region[]) {}

  /** The region holding [gpa, gpa+len), or undefined when the range is not backed. */
  regionOf(gpa: number, len = 1): Region | undefined {
    return this.regions.find((r) => gpa >= r.base && gpa + len <= r.base + r.size);
  }

  isMapped(gpa: number): boolean {
    return this.regions.some((r) => gpa >= r.base && gpa < r.base + r.size);
  }

  /** Page frame numbers that hold stored bytes, in ascending order. */
  storedPfns(): number[] {
    return [...this.pages.keys()].sort((a, b) => a - b);
  }

  /** The stored page, or undefined when it was never written. */
  peekPage(pfn: number): Buffer | undefined {
    const id = this.pages.get(pfn);
    return id === undefined ? undefined : this.slabs.view(id);
  }

  /** The stored page, created zeroed on first use. */
  page(pfn: number): Buffer {
    let id = this.pages.get(pfn);
    if (id === undefined) {
      id = this.slabs.alloc();
      this.pages.set(pfn, id);
    }
    return this.slabs.view(id);
  }

  /** Host view: the stored bytes; unbacked or untouched memory reads as zeros. */
  read(gpa: number, len: number): Buffer {
    const out = Buffer.alloc(len);
    forPages(gpa, len, (pfn, off, n, done) => {
      this.peekPage(pfn)?.copy(out, done, off, off + n);
    });
    return out;
  }

  /** Host write of stored bytes. */
  write(gpa: number, data: Uint8Array): void {
    forPages(gpa, data.length, (pfn, off, n, done) => {
      this.page(pfn).set(data.subarray(done, done + n), off);
      this.dirty?.add(pfn);
    });
  }

  clear(): void {
    this.pages.clear();
    this.slabs = new PageSlabs();
  }
}

/** Calls fn(pfn, offset in page, length, bytes done) for each page a range touches. */
export function forPages(gpa: number, len: number, fn: (pfn: number, off: number, n: number, done: number) => void): void {
  let done = 0;
  while (done < len) {
    const addr = gpa + done;
    const pfn = Math.floor(addr / PAGE_SIZE);
    const off = addr - pfn * PAGE_SIZE;
    const n = Math.min(PAGE_SIZE - off, len - done);
    fn(pfn, off, n, done);
    done += n;
  }
}
