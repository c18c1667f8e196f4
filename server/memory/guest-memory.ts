/**
 * A guest's memory as the host and the guest see it (sevd's model, docs/architecture.md): stored bytes
 * (the host view) in sparse pages; pages marked private hold ciphertext under the key of
 * the guest's ASID, and the guest view decrypts them. Pages never written read as zeros
 * in both views.
 */
import { forPages, PAGE_SIZE, SparseMemory, type Region } from './sparse-memory.js';
import type { MemoryController, PageToEncrypt } from './memory-controller.js';
import type { PageBatch } from './bulk/page-batch.js';

export type PageKind = 'private' | 'shared' | 'vmsa' | 'untouched';

export class GuestMemory extends SparseMemory {
  /** RAM pages are private unless flipped (an SEV guest sets the C-bit on its memory). */
  private defaultPrivate = false;
  /** Pages whose C-bit differs from the default (kept small: only explicit changes). */
  private readonly flipped = new Set<number>();
  /** The ASID the guest runs with, once the firmware context is active (SEV guests). */
  asid: number | null = null;
  readonly spaBase: number;

  constructor(regions: readonly Region[], private readonly mc: MemoryController | null) {
    super(regions);
    this.spaBase = mc ? mc.allocateSpaWindow() : 0;
  }

  spaOf(pfn: number): number {
    return this.spaBase + pfn * PAGE_SIZE;
  }

  private inRam(pfn: number): boolean {
    const gpa = pfn * PAGE_SIZE;
    return this.regions.some((r) => r.name.startsWith('pc.ram') && gpa >= r.base && gpa < r.base + r.size);
  }

  /** The page's C-bit view: private (encrypted) or shared. */
  isPrivate(pfn: number): boolean {
    const base = this.defaultPrivate && this.inRam(pfn);
    return base !== this.flipped.has(pfn);
  }

  private get encrypting(): boolean {
    return this.mc !== null && this.asid !== null && this.mc.hasKey(this.asid);
  }

  /** Plaintext of a page as the guest sees it (zeros if never written). */
  private guestPage(pfn: number): Buffer {
    const stored = this.peekPage(pfn);
    if (!stored) return Buffer.alloc(PAGE_SIZE);
    if (!this.isPrivate(pfn)) return Buffer.from(stored);
    if (!this.encrypting) throw new Error('private page read without an active key');
    return this.mc!.decryptPage(this.asid!, this.spaOf(pfn), stored);
  }

  private storeGuestPage(pfn: number, plain: Uint8Array): void {
    this.dirty?.add(pfn);
    if (this.isPrivate(pfn)) {
      if (!this.encrypting) throw new Error('private page write without an active key');
      this.page(pfn).set(this.mc!.encryptPage(this.asid!, this.spaOf(pfn), plain));
    } else {
      this.page(pfn).set(plain);
    }
  }

  /** Guest view of one whole page (no copy for private pages: the decryption output). */
  guestReadPage(pfn: number): Buffer {
    return this.guestPage(pfn);
  }

  /** Guest view of whole pages into batch slots 0..n-1 (private ones decrypted as one batch). */
  guestReadPagesInto(batch: PageBatch, pfns: readonly number[]): void {
    const slots: number[] = [];
    const spas: number[] = [];
    for (let i = 0; i < pfns.length; i++) {
      const pfn = pfns[i]!;
      const stored = this.peekPage(pfn);
      if (!stored) {
        batch.slot(i).fill(0);
        continue;
      }
      batch.slot(i).set(stored);
      if (this.isPrivate(pfn)) {
        slots.push(i);
        spas.push(this.spaOf(pfn));
      }
    }
    if (slots.length === 0) return;
    if (!this.encrypting) throw new Error('private page read without an active key');
    this.mc!.decryptSlots(this.asid!, batch, slots, spas);
  }

  /** Guest view write of whole pages: `pfns[j]` gets the plaintext in batch slot `slots[j]`. */
  guestWritePagesFrom(batch: PageBatch, pfns: readonly number[], slots: readonly number[]): void {
    const priv: number[] = [];
    const spas: number[] = [];
    const dests: Buffer[] = [];
    for (let j = 0; j < pfns.length; j++) {
      const pfn = pfns[j]!;
      this.dirty?.add(pfn);
      if (!this.isPrivate(pfn)) {
        this.page(pfn).set(batch.slot(slots[j]!));
        continue;
      }
      priv.push(slots[j]!);
      spas.push(this.spaOf(pfn));
      dests.push(this.page(pfn));
    }
    if (priv.length === 0) return;
    if (!this.encrypting) throw new Error('private page write without an active key');
    this.mc!.encryptSlotsTo(this.asid!, batch, priv, spas, dests);
  }

  /** Guest view read: private pages decrypted with the guest's key. */
  guestRead(gpa: number, len: number): Buffer {
    const out = Buffer.alloc(len);
    forPages(gpa, len, (pfn, off, n, done) => {
      if (!this.peekPage(pfn)) return; // zeros
      this.guestPage(pfn).copy(out, done, off, off + n);
    });
    return out;
  }

  /** Guest view write: read-modify-write of each touched page through the guest's key. */
  guestWrite(gpa: number, data: Uint8Array): void {
    forPages(gpa, data.length, (pfn, off, n, done) => {
      if (n === PAGE_SIZE) return this.storeGuestPage(pfn, data.subarray(done, done + n));
      const plain = this.guestPage(pfn);
      plain.set(data.subarray(done, done + n), off);
      this.storeGuestPage(pfn, plain);
    });
  }

  /** The guest's page-state change: stored bytes are not transformed (as on hardware). */
  setPrivate(gpa: number, len: number, priv: boolean): void {
    forPages(gpa, len, (pfn) => {
      const base = this.defaultPrivate && this.inRam(pfn);
      if (priv === base) this.flipped.delete(pfn);
      else this.flipped.add(pfn);
    });
  }

  /**
   * LAUNCH_UPDATE_DATA / RECEIVE: encrypts whatever is stored in the touched pages, as the
   * hardware would (calling it twice encrypts twice), and makes them private.
   */
  encryptInPlace(gpa: number, len: number, measure: (plain: Uint8Array) => void = () => undefined): void {
    if (!this.encrypting) throw new Error('encryption without an active key');
    this.setPrivate(gpa, len, true);
    const pages: PageToEncrypt[] = [];
    forPages(gpa, len, (pfn, off, n) => {
      const page = this.page(pfn);
      // The measured bytes are exactly the range; the whole page is the encryption unit.
      pages.push({ page, spa: this.spaOf(pfn), measured: off === 0 && n === PAGE_SIZE ? page : page.subarray(off, off + n) });
    });
    this.mc!.measureAndEncrypt(this.asid!, pages, measure);
  }

  /** Shared (non-private) page ranges as [first gfn, end gfn) pairs: the series' shared-regions list. */
  sharedRanges(): [number, number][] {
    const out: [number, number][] = [];
    for (const pfn of [...this.flipped].sort((a, b) => a - b)) {
      if (this.isPrivate(pfn)) continue;
      const last = out[out.length - 1];
      if (last && last[1] === pfn) last[1] = pfn + 1;
      else out.push([pfn, pfn + 1]);
    }
    return out;
  }

  /**
   * The memory picture (docs/interface.md §12): runs of pages in address order within
   * [gpa, gpa + size), each private, shared, VMSA (frames of `vmsaRegion`) or untouched
   * (never written: no stored page). Unmapped addresses are left out.
   */
  pageRuns(gpa: number, size: number, vmsaRegion: string): { gpa: number; pages: number; kind: PageKind }[] {
    const first = Math.floor(gpa / PAGE_SIZE);
    const end = Math.ceil((gpa + size) / PAGE_SIZE);
    const stored = this.storedPfns().filter((p) => p >= first && p < end).sort((a, b) => a - b);
    const runs: { gpa: number; pages: number; kind: PageKind }[] = [];
    const push = (pfn: number, n: number, kind: PageKind) => {
      const last = runs[runs.length - 1];
      if (last && last.kind === kind && last.gpa + last.pages * PAGE_SIZE === pfn * PAGE_SIZE) last.pages += n;
      else runs.push({ gpa: pfn * PAGE_SIZE, pages: n, kind });
    };
    const regions = [...this.regions].sort((a, b) => a.base - b.base);
    let i = 0;
    for (const r of regions) {
      const lo = Math.max(first, r.base / PAGE_SIZE);
      const hi = Math.min(end, (r.base + r.size) / PAGE_SIZE);
      let at = lo;
      while (at < hi) {
        while (i < stored.length && stored[i]! < at) i++;
        const next = i < stored.length && stored[i]! < hi ? stored[i]! : hi;
        if (next > at) push(at, next - at, 'untouched');
        if (next < hi) push(next, 1, r.name === vmsaRegion ? 'vmsa' : this.isPrivate(next) ? 'private' : 'shared');
        at = next + 1;
      }
    }
    return runs;
  }

  /** Drops every stored page and key binding (a discarded incoming guest). */
  discard(): void {
    this.clear();
    this.flipped.clear();
    this.asid = null;
  }

  /** An SEV guest: its RAM is private unless the guest shares pages. */
  setDefaultPrivate(): void {
    this.defaultPrivate = true;
    this.flipped.clear();
  }
}
