/**
 * The one place where a refusal from below (the firmware's status, KVM's errno) becomes
 * QEMU's words: the catalogue of QEMU's SEV texts (target/i386/sev.c; the firmware texts
 * of docs/interface.md §5) and the two translators that apply them, `kvmCall` for the KVM
 * boundary and `fwCall` for the platform commands that reach the firmware directly.
 * Nothing else builds a QmpError from a KvmError or a FirmwareError.
 */
import { QmpError } from '../errors/qmp-error.js';
import { fwErrorText } from '../../abi/fw-status.js';
import { FirmwareError, isLengthQuery, KvmError } from '../kvm/kvm-sev.js';
import { errnoText } from '../util/strerror.js';

const fw = (status: number) => `fw_err=${status} (${fwErrorText(status)})`;

/** QEMU's texts for a failure below, by what failed. */
export const SevFailure = {
  /** The interface's text for any firmware refusal (docs/interface.md §5; AMD SEV API 55766, Status Codes). */
  firmware: (command: string, status: number) => `SEV: ${command} failed: ${fw(status)}`,
  /** A KVM ioctl refused before the firmware ran. */
  ioctl: (e: KvmError) => `SEV: ${e.ioctl} failed: ret=${e.ret}`,
  createVm: () => 'sev_common_kvm_init: host kernel does not support the requested SEV configuration.',
  init: (e: KvmError) => `sev_common_kvm_init: failed to initialize ret=${e.ret} fw_error=${e.fwError} '${fwErrorText(e.fwError)}'`,
  platformStatus: (status: number) => `sev_common_kvm_init: failed to get platform status ret=-1 fw_error='${status}: ${fwErrorText(status)}'`,
  injectSecret: (e: KvmError) => `SEV: failed to inject secret ret=${e.ret} fw_error=${e.fwError} '${fwErrorText(e.fwError)}'`,
  attestationLength: (modern: boolean) => (e: KvmError) =>
    `${modern ? 'SEV: Failed' : 'failed'} to query the attestation report length ret=${e.ret} ${fw(e.fwError)}`,
  attestation: (e: KvmError) => `SEV: Failed to get attestation report ret=${e.ret} ${fw(e.fwError)}: ${errnoText(e.ret)}`,
  guestRequest: (e: KvmError) => `SEV-SNP: SNP_GUEST_REQUEST failed: ret=${e.ret}`,
  exportPdh: (modern: boolean) => (e: FirmwareError) => `${modern ? 'SEV: Failed' : 'failed'} to export PDH cert ret=-1 ${fw(e.status)}`,
  getId: (e: FirmwareError) => `SEV: Failed to get ID ret=-1 ${fw(e.status)}`,
  /** SNP_LAUNCH_UPDATE of the CPUID page refused: the reason, the differences, QEMU's verdict. */
  cpuidPage: (reason: string, differences: string[]) => [reason, ...differences, 'SEV-SNP: failed update CPUID page'].join('\n'),
} as const;

/**
 * How a call site words a KVM failure: `kvm` for what KVM refused itself, `firmware` when
 * the firmware refused. By default QEMU's launch commands print the firmware's text
 * whenever the firmware ran; commands with their own wording (secret injection,
 * attestation) use theirs for both.
 */
export interface KvmWording {
  kvm: (e: KvmError) => string;
  firmware?: (e: KvmError) => string;
}

export const launchWording = (kvm: (e: KvmError) => string = SevFailure.ioctl): KvmWording => ({ kvm });
export const ownWording = (text: (e: KvmError) => string): KvmWording => ({ kvm: text, firmware: text });

/** The KVM → QMP translator. Anything that is not a KvmError is not a refusal and passes. */
export function fromKvm(e: unknown, wording: KvmWording = launchWording()): never {
  if (!(e instanceof KvmError)) throw e;
  if (e.fwCommand) throw QmpError.generic(wording.firmware ? wording.firmware(e) : SevFailure.firmware(e.fwCommand, e.fwError));
  throw QmpError.generic(wording.kvm(e));
}

export function kvmCall<T>(fn: () => T, wording?: KvmWording): T {
  try {
    return fn();
  } catch (e) {
    return fromKvm(e, wording);
  }
}

/** The firmware → QMP translator (platform commands without KVM in between). */
export function fwCall<T>(fn: () => T, text: (e: FirmwareError) => string = (e) => SevFailure.firmware(e.command, e.status)): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof FirmwareError) throw QmpError.generic(text(e));
    throw e;
  }
}

/** QEMU's length query: the call without a buffer fails with INVALID_LEN and the length it needs. */
export function queriedLength(query: () => unknown, key: string): number {
  try {
    query();
  } catch (e) {
    if (e instanceof KvmError && isLengthQuery(e)) return e.lengths[key]!;
    throw e;
  }
  return 0;
}
