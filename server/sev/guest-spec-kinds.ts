/**
 * A confidential guest's spec as QEMU's objects define it, one variant per kind: `sev` and
 * `sev-es` (the sev-guest object; SEV-ES when its policy says so) and `sev-snp` (the
 * sev-snp-guest object, with its own 64-bit policy). Files are already read (spec-files.ts).
 */

/** The -kernel, -initrd and -append of a guest whose hashes are measured (kernel-hashes=on). */
export interface KernelImages {
  kernel: Buffer;
  initrd: Buffer | null;
  append: string | null;
}

/** What every kind has: QEMU's common properties and the machine's vCPUs. */
interface CommonSpec {
  cbitpos: number | null;
  reducedPhysBits: number | null;
  /** kernel-hashes=on with a kernel: what is measured into the hashes table; else null. */
  kernelHashes: KernelImages | null;
  smp: number;
  /** A QEMU CPU model name, or `host`. */
  cpu: string;
}

/** QEMU's sev-guest object (docs/interface.md §3). */
export interface SevSpec extends CommonSpec {
  kind: 'sev' | 'sev-es';
  policy: number;
  handle: number;
  /** The guest owner's PDH and session blob (dh-cert-file, session-file), decoded; null for none. */
  godh: Buffer | null;
  session: Buffer | null;
  /** QEMU's `legacy-vm-type` (9.1+): true = KVM_X86_DEFAULT_VM with the legacy INIT commands. */
  legacyVmType: boolean;
}

/** QEMU's sev-snp-guest object (docs/interface.md §9), decoded. */
export interface SnpSpec extends CommonSpec {
  kind: 'sev-snp';
  policy: bigint;
  gosvw: Buffer;
  idBlock: Buffer | null;
  idAuth: Buffer | null;
  authorKeyEnabled: boolean;
  hostData: Buffer;
  vcekDisabled: boolean;
  /** The certificate table the host hands out with extended reports (certs-filename's content). */
  certTable: Buffer | null;
  secureTsc: boolean;
}

export type ConfidentialSpec = SevSpec | SnpSpec;
