/**
 * The firmware boundary as types: for each firmware class, the SEV API command each public
 * method is (AMD SEV API 55766, SNP firmware ABI 56860), and the methods that are not
 * commands. The boundary (server/observability/instrument.ts) counts and faults exactly the
 * commands of these tables. Each table is typed over its class's public methods, so a new
 * method is a compile error until it is named here, as a command or as a helper.
 */
import type { SevCommand } from './status.js';
import type { SevDevice } from './sev-device.js';
import type { GuestFirmware } from './guest-firmware.js';
import type { SnpGuestFirmware } from './snp-guest-firmware.js';
import type { SendReceive } from './send-receive.js';

/** The names of T's public methods (fields and getters are not methods). */
export type PublicMethods<T> = { [K in keyof T]-?: T[K] extends (...args: never[]) => unknown ? K : never }[keyof T] & string;

/** Every public method of T but the listed helpers, each with its SEV API command. */
export type CommandTable<T, Helpers extends readonly string[]> = Record<Exclude<PublicMethods<T>, Helpers[number]>, SevCommand>;

/**
 * Not commands: sevd's own hooks, checks the other firmware classes share, and private
 * steps (listed too, as the prototype shows them, so the boundary test can tell a helper
 * from a command that was forgotten).
 */
export const DEVICE_HELPERS = ['snpSetTcb', 'ensureInit', 'snpPlatform'] as const;
export const GUEST_HELPERS = ['checkPolicy', 'sharedVek', 'peerDhKey', 'checkFlags', 'bound', 'apiAtLeast', 'unbind', 'checkDebug'] as const;
export const SNP_GUEST_HELPERS = ['has', 'owned', 'ctx', 'checkCpuid', 'report', 'derivedKey', 'tcbNotNewer'] as const;
export const SEND_RECEIVE_HELPERS = ['checkIncoming', 'applyIncoming'] as const;

/** /dev/sev: the platform management commands. */
export const DEVICE_COMMANDS: CommandTable<SevDevice, typeof DEVICE_HELPERS> = {
  status: 'PLATFORM_STATUS',
  pekGen: 'PEK_GEN',
  pdhGen: 'PDH_GEN',
  pekCsr: 'PEK_CSR',
  pekCertImport: 'PEK_CERT_IMPORT',
  pdhCertExport: 'PDH_CERT_EXPORT',
  getId: 'GET_ID',
  factoryReset: 'FACTORY_RESET',
  snpPlatformStatus: 'SNP_PLATFORM_STATUS',
  snpConfig: 'SNP_CONFIG',
  snpCommit: 'SNP_COMMIT',
};

/** SEV and SEV-ES guest commands. */
export const GUEST_COMMANDS: CommandTable<GuestFirmware, typeof GUEST_HELPERS> = {
  launchStart: 'LAUNCH_START',
  launchUpdateData: 'LAUNCH_UPDATE_DATA',
  launchUpdateVmsa: 'LAUNCH_UPDATE_VMSA',
  launchMeasure: 'LAUNCH_MEASURE',
  launchSecret: 'LAUNCH_SECRET',
  launchFinish: 'LAUNCH_FINISH',
  activate: 'ACTIVATE',
  deactivate: 'DEACTIVATE',
  decommission: 'DECOMMISSION',
  dfFlush: 'DF_FLUSH',
  guestStatus: 'GUEST_STATUS',
  attestation: 'ATTESTATION',
  dbgDecrypt: 'DBG_DECRYPT',
  dbgEncrypt: 'DBG_ENCRYPT',
};

/** SEV-SNP guest commands. */
export const SNP_GUEST_COMMANDS: CommandTable<SnpGuestFirmware, typeof SNP_GUEST_HELPERS> = {
  launchStart: 'SNP_LAUNCH_START',
  launchUpdate: 'SNP_LAUNCH_UPDATE',
  launchFinish: 'SNP_LAUNCH_FINISH',
  guestRequest: 'SNP_GUEST_REQUEST',
  activate: 'SNP_ACTIVATE',
  decommission: 'SNP_DECOMMISSION',
};

/** Migration commands; the page batches perform one command per packet. */
export const SEND_RECEIVE_COMMANDS: CommandTable<SendReceive, typeof SEND_RECEIVE_HELPERS> = {
  sendStart: 'SEND_START',
  sendUpdateData: 'SEND_UPDATE_DATA',
  sendUpdateDataPages: 'SEND_UPDATE_DATA',
  sendFinish: 'SEND_FINISH',
  sendCancel: 'SEND_CANCEL',
  receiveStart: 'RECEIVE_START',
  receiveUpdateData: 'RECEIVE_UPDATE_DATA',
  receiveUpdateDataPages: 'RECEIVE_UPDATE_DATA',
  receiveFinish: 'RECEIVE_FINISH',
};

/** The batch methods: the argument whose length is the number of commands one call performs. */
export const SEND_RECEIVE_BATCHES = { sendUpdateDataPages: 2, receiveUpdateDataPages: 2 } as const satisfies Partial<Record<keyof typeof SEND_RECEIVE_COMMANDS, number>>;
