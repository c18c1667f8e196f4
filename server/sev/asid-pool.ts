/**
 * KVM's ASID allocator (arch/x86/kvm/svm/sev.c): SEV guests take ASIDs from
 * minSevAsid..maxAsid; a freed ASID needs DF_FLUSH before reuse, which KVM issues itself
 * when it runs out of clean ones.
 */
import type { GuestFirmware } from '../firmware/guest-firmware.js';

export class AsidPool {
  private readonly used = new Set<number>();
  private readonly dirty = new Set<number>();

  constructor(private readonly fw: GuestFirmware) {}

  /** A free ASID, or undefined when every one is taken (KVM: -EBUSY). */
  allocate(): number | undefined {
    const { minSevAsid, maxAsid } = this.fw.asids;
    for (let pass = 0; pass < 2; pass++) {
      for (let a = minSevAsid; a <= maxAsid; a++) if (!this.used.has(a) && !this.dirty.has(a)) return this.take(a);
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
