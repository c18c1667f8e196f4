/**
 * KVM's ASID allocator (arch/x86/kvm/svm/sev.c): SEV-ES guests take ASIDs below
 * minSevAsid, SEV guests minSevAsid..maxAsid; a freed ASID needs DF_FLUSH before reuse,
 * which KVM issues itself when it runs out of clean ones.
 */
import type { GuestFirmware } from '../firmware/guest-firmware.js';

export class AsidPool {
  private readonly used = new Set<number>();
  private readonly dirty = new Set<number>();

  constructor(private readonly fw: GuestFirmware) {}

  /** A free ASID of the guest's kind, or undefined when every one is taken (KVM: -EBUSY). */
  allocate(es = false): number | undefined {
    const { minSevAsid, maxAsid } = this.fw.asids;
    const [lo, hi] = es ? [1, minSevAsid - 1] : [minSevAsid, maxAsid];
    if (lo > hi) return undefined;
    for (let pass = 0; pass < 2; pass++) {
      for (let a = lo; a <= hi; a++) if (!this.used.has(a) && !this.dirty.has(a)) return this.take(a);
      if (this.dirty.size === 0) return undefined;
      this.fw.dfFlush();
      this.dirty.clear();
    }
    return undefined;
  }

  private take(a: number): number {
    this.used.add(a);
    return a;
  }

  release(asid: number): void {
    if (this.used.delete(asid)) this.dirty.add(asid);
  }

  get inUse(): number {
    return this.used.size;
  }
}
