/**
 * Why an incoming migration stream was refused. The message is what query-migrate's
 * error-desc shows (QEMU's text where QEMU has one); `code` is stable, for programs and
 * tests, like websockets/ws's WS_ERR_* codes.
 */
export const StreamErrorCode = {
  BAD_MAGIC: 'ERR_MIGRATION_BAD_MAGIC',
  BAD_VERSION: 'ERR_MIGRATION_BAD_VERSION',
  BAD_FLAGS: 'ERR_MIGRATION_BAD_FLAGS',
  BAD_LENGTH: 'ERR_MIGRATION_BAD_LENGTH',
  BAD_JSON: 'ERR_MIGRATION_BAD_JSON',
  BAD_SUBTYPE: 'ERR_MIGRATION_BAD_SUBTYPE',
  BAD_TAG: 'ERR_MIGRATION_BAD_TAG',
  /** A shared range that is empty, out of order or overlaps the one before. */
  BAD_RANGE: 'ERR_MIGRATION_BAD_RANGE',
  RANGE_OUTSIDE_RAM: 'ERR_MIGRATION_RANGE_OUTSIDE_RAM',
  TOO_MANY_RANGES: 'ERR_MIGRATION_TOO_MANY_RANGES',
  PAGE_OUTSIDE_RAM: 'ERR_MIGRATION_PAGE_OUTSIDE_RAM',
  /** The first record is not the RAM size (QEMU's RAM_SAVE_FLAG_MEM_SIZE). */
  NO_RAM_SIZE: 'ERR_MIGRATION_NO_RAM_SIZE',
  RAM_SIZE: 'ERR_MIGRATION_RAM_SIZE',
  /** An SEV stream for a plain guest or the other way round. */
  SEV_MISMATCH: 'ERR_MIGRATION_SEV_MISMATCH',
  /** SEV data, or the end of an SEV stream, without RECEIVE_START before it. */
  NO_RECEIVE_START: 'ERR_MIGRATION_NO_RECEIVE_START',
  /** SEV-ES and SEV-SNP guests cannot be migrated (QEMU never merged it). */
  UNSUPPORTED: 'ERR_MIGRATION_UNSUPPORTED',
  ENDED_EARLY: 'ERR_MIGRATION_ENDED_EARLY',
} as const;

export type StreamErrorCode = (typeof StreamErrorCode)[keyof typeof StreamErrorCode];

export class StreamFormatError extends Error {
  constructor(readonly code: StreamErrorCode, message: string) {
    super(message);
  }
}
