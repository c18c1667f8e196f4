/**
 * The firmware's command names and the error every command throws (the status codes and
 * their texts are in abi/fw-status.ts).
 */
import { fwErrorText } from '../../abi/fw-status.js';

/** The codes and texts, for the firmware's own callers (the layers above read them from abi/). */
export { FwStatus, fwErrorText, type FwStatusCode } from '../../abi/fw-status.js';

/** Firmware command names as the interface prints them (`SEV: <CMD> failed: ...`): every one sevd emulates. */
export const SEV_COMMANDS = [
  'INIT', 'SHUTDOWN', 'FACTORY_RESET', 'PLATFORM_STATUS', 'PEK_GEN', 'PEK_CSR', 'PEK_CERT_IMPORT',
  'PDH_CERT_EXPORT', 'PDH_GEN', 'DF_FLUSH', 'GET_ID',
  'DECOMMISSION', 'ACTIVATE', 'DEACTIVATE', 'GUEST_STATUS',
  'LAUNCH_START', 'LAUNCH_UPDATE_DATA', 'LAUNCH_UPDATE_VMSA', 'LAUNCH_MEASURE', 'LAUNCH_SECRET',
  'LAUNCH_FINISH', 'ATTESTATION',
  'SEND_START', 'SEND_UPDATE_DATA', 'SEND_FINISH', 'SEND_CANCEL',
  'RECEIVE_START', 'RECEIVE_UPDATE_DATA', 'RECEIVE_FINISH',
  'DBG_DECRYPT', 'DBG_ENCRYPT',
  'SNP_INIT', 'SNP_PLATFORM_STATUS', 'SNP_CONFIG', 'SNP_COMMIT',
  'SNP_LAUNCH_START', 'SNP_LAUNCH_UPDATE', 'SNP_LAUNCH_FINISH', 'SNP_GUEST_REQUEST', 'SNP_ACTIVATE', 'SNP_DECOMMISSION',
] as const;
export type SevCommand = (typeof SEV_COMMANDS)[number];

/**
 * A failed firmware command. For INVALID_LEN the firmware also wrote the required
 * lengths into the command buffer: they travel in `lengths` (the length-query convention).
 */
export class FirmwareError extends Error {
  constructor(
    readonly command: SevCommand,
    readonly status: number,
    readonly lengths: Readonly<Record<string, number>> = {},
  ) {
    super(`SEV: ${command} failed: fw_err=${status} (${fwErrorText(status)})`);
    this.name = 'FirmwareError';
  }
}
