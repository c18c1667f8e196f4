/**
 * SEV firmware status codes (AMD SEV API 55766 "Status Codes", linux
 * include/uapi/linux/psp-sev.h) with QEMU's texts for them (target/i386/sev.c
 * sev_fw_errlist): what the chip returns and what every layer above words, once.
 */
export const FwStatus = {
  SUCCESS: 0x00,
  INVALID_PLATFORM_STATE: 0x01,
  INVALID_GUEST_STATE: 0x02,
  INVALID_CONFIG: 0x03,
  INVALID_LEN: 0x04,
  ALREADY_OWNED: 0x05,
  INVALID_CERTIFICATE: 0x06,
  POLICY_FAILURE: 0x07,
  INACTIVE: 0x08,
  INVALID_ADDRESS: 0x09,
  BAD_SIGNATURE: 0x0a,
  BAD_MEASUREMENT: 0x0b,
  ASID_OWNED: 0x0c,
  INVALID_ASID: 0x0d,
  WBINVD_REQUIRED: 0x0e,
  DFFLUSH_REQUIRED: 0x0f,
  INVALID_GUEST: 0x10,
  INVALID_COMMAND: 0x11,
  ACTIVE: 0x12,
  HWERROR_PLATFORM: 0x13,
  HWERROR_UNSAFE: 0x14,
  UNSUPPORTED: 0x15,
  INVALID_PARAM: 0x16,
  RESOURCE_LIMIT: 0x17,
  SECURE_DATA_INVALID: 0x18,
  // SNP (psp-sev.h)
  INVALID_PAGE_SIZE: 0x19,
  INVALID_PAGE_STATE: 0x1a,
  INVALID_MDATA_ENTRY: 0x1b,
  INVALID_PAGE_OWNER: 0x1c,
  AEAD_OFLOW: 0x1d,
  RMP_INIT_REQUIRED: 0x20,
  BAD_SVN: 0x21,
  BAD_VERSION: 0x22,
  INVALID_KEY: 0x27,
} as const;
export type FwStatusCode = (typeof FwStatus)[keyof typeof FwStatus];

const TEXTS = [
  '', 'Platform state is invalid', 'Guest state is invalid', 'Platform configuration is invalid',
  'Buffer too small', 'Platform is already owned', 'Certificate is invalid', 'Policy is not allowed',
  'Guest is not active', 'Invalid address', 'Bad signature', 'Bad measurement', 'ASID is already owned',
  'Invalid ASID', 'WBINVD is required', 'DF_FLUSH is required', 'Guest handle is invalid', 'Invalid command',
  'Guest is active', 'Hardware error', 'Hardware unsafe', 'Feature not supported', 'Invalid parameter',
  'Required firmware resource depleted', 'Part-specific integrity check failure',
];

/** QEMU's text for a status code; codes outside 0–24 are "unknown error". */
export function fwErrorText(code: number): string {
  return TEXTS[code] ?? 'unknown error';
}
