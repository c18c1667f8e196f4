/**
 * The SNP launch digest (SNP ABI §8.17.2, PAGE_INFO): SHA-384 chained over one 0x70-byte
 * PAGE_INFO per 4 KiB page — current digest ‖ contents hash ‖ length ‖ page type ‖ IMI ‖
 * VMPL permissions ‖ GPA. NORMAL and VMSA pages hash their contents; ZERO, UNMEASURED,
 * SECRETS and CPUID pages contribute 48 zero bytes. The firmware extends it at each
 * SNP_LAUNCH_UPDATE; a guest owner replays the same pages to predict it.
 */
import { createHash } from 'node:crypto';

export const SnpPageType = { NORMAL: 1, VMSA: 2, ZERO: 3, UNMEASURED: 4, SECRETS: 5, CPUID: 6 } as const;
export type SnpPageTypeCode = (typeof SnpPageType)[keyof typeof SnpPageType];

export const SNP_LD_SIZE = 48;
/** Where the RMP records VMSA pages: GPA -1, page-aligned, bits above 51 clear. */
export const SNP_VMSA_GPA = 0xfffffffff000;
const PAGE = 4096;

/** PAGE_INFO for one page; returns the next launch digest. */
export function extendPageInfo(ld: Uint8Array, type: SnpPageTypeCode, gpa: number, page: Uint8Array | null): Buffer {
  const info = Buffer.alloc(0x70);
  Buffer.from(ld).copy(info, 0);
  if (page && (type === SnpPageType.NORMAL || type === SnpPageType.VMSA)) createHash('sha384').update(page).digest().copy(info, 48);
  info.writeUInt16LE(0x70, 96);
  info[98] = type;
  // 99: IMI page, 100–102: VMPL3..1 permissions, 103: reserved — all 0 for a launch.
  info.writeBigUInt64LE(BigInt(gpa), 104);
  return createHash('sha384').update(info).digest();
}

/** A launch digest being built page by page (what GCTX.LD holds). */
export class SnpLaunchDigest {
  private ld: Buffer = Buffer.alloc(SNP_LD_SIZE);

  get digest(): Buffer {
    return Buffer.from(this.ld);
  }

  /** `data` covers whole pages from `gpa`; for types without contents it may be null (its length then `len`). */
  pages(type: SnpPageTypeCode, gpa: number, data: Uint8Array | null, len = data?.length ?? 0): this {
    if (gpa % PAGE || len % PAGE) throw new RangeError('SNP launch pages are whole 4 KiB pages');
    for (let off = 0; off < len; off += PAGE) this.ld = extendPageInfo(this.ld, type, gpa + off, data ? data.subarray(off, off + PAGE) : null);
    return this;
  }

  vmsa(page: Uint8Array): this {
    this.ld = extendPageInfo(this.ld, SnpPageType.VMSA, SNP_VMSA_GPA, page);
    return this;
  }
}
