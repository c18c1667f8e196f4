/**
 * Guest policy bits, which the chip enforces and the guest owner chooses: SEV's 32-bit policy
 * (AMD SEV API 55766, "Guest Policy") and SNP's 64-bit policy (SNP firmware ABI 56860,
 * table 9). The VMM, KVM and the firmware all read them, so they live below all three.
 */

/** SEV guest policy bits (SEV API 55766 §3, "Guest Policy"). */
export const Policy = { NODBG: 0x1, NOKS: 0x2, ES: 0x4, NOSEND: 0x8, DOMAIN: 0x10, SEV: 0x20 } as const;

/** SNP guest policy bits (SNP ABI table 9). */
export const SnpPolicy = { SMT: 1n << 16n, RESERVED_ONE: 1n << 17n, MIGRATE_MA: 1n << 18n, DEBUG: 1n << 19n, SINGLE_SOCKET: 1n << 20n } as const;
