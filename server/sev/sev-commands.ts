/**
 * The SEV commands of a guest monitor, with QEMU's checks, order and texts
 * (QEMU qapi/misc-target.json).
 */
import type { Handler, Handlers } from '../dispatch/dispatcher.js';
import type { SessionContext } from '../dispatch/common-commands.js';
import { atLeast } from '../dispatch/version.js';
import { glibBase64Decode } from '../util/base64.js';
import { QmpError } from '../errors/qmp-error.js';
import { kvmCall, ownWording, queriedLength, SevFailure } from './qemu-errors.js';
import { findEntry, readBaseSize, SEV_SECRET_BLOCK_GUID } from '../../abi/ovmf-table.js';
import type { Guest } from '../guest/guest.js';
import type { ConfidentialGuest } from './guest-kinds.js';
import { SEV_STATES } from './launched-vm.js';

export interface SevGuestContext extends SessionContext {
  guest: Guest;
  /** The guest's SEV state, or null for a guest without SEV. */
  sevGuest: ConfidentialGuest | null;
}

const KVM_MAX_SECRET = 16384;
/** QEMU compares SevState codes: the measurement exists from launch-secret on. */
const LAUNCH_SECRET_CODE = SEV_STATES.indexOf('launch-secret');

function querySev<C extends SevGuestContext>(): Handler<C, 'query-sev'> {
  return (_a, { sevGuest: s, session }) => {
    const modern = atLeast(session.monitor.version, '9.1.0');
    const base = s
      ? { enabled: true, 'api-major': s.api.major, 'api-minor': s.api.minor, 'build-id': s.api.build, state: s.state }
      : { enabled: false, 'api-major': 0, 'api-minor': 0, 'build-id': 0, state: 'uninit' };
    if (s) return { ...base, ...s.queryMembers(modern) };
    const branch = { policy: 0, handle: 0 };
    return modern ? { ...base, 'sev-type': 'sev', ...branch } : { ...base, ...branch };
  };
}

/** QEMU's gpa2hva() texts for a range that is not plain RAM. */
function checkGuestRange(guest: Guest, gpa: number, size: number, raw: unknown): void {
  const prefix = 'SEV: Failed to calculate guest address: ';
  const hex = BigInt(raw as number | bigint).toString(16);
  const region = guest.memory.regions.find((r) => gpa >= r.base && gpa < r.base + r.size);
  if (!region) throw QmpError.generic(`${prefix}No memory is mapped at address 0x${hex}`);
  if (!region.name.startsWith('pc.ram')) throw QmpError.generic(`${prefix}Memory at address 0x${hex} is not RAM`);
  if (gpa + size > region.base + region.size) throw QmpError.generic(`${prefix}Size of memory region at 0x${hex} exceeded.`);
}

function injectSecret<C extends SevGuestContext>(): Handler<C, 'sev-inject-launch-secret'> {
  return (args, { sevGuest: s, guest }) => {
    if (!s) throw QmpError.generic('SEV not enabled for guest');
    let gpa: number;
    let rawGpa: unknown = args['gpa'];
    if (args['gpa'] === undefined) {
      const block = readBaseSize(findEntry(guest.ovmfEntries, SEV_SECRET_BLOCK_GUID));
      // sevd's choice: a block with size 0 (Debian's OVMF) is no secret area either.
      if (!block || block.size === 0) throw QmpError.generic('SEV: no secret area found in OVMF, gpa must be specified.');
      gpa = block.base;
      rawGpa = gpa;
    } else {
      gpa = typeof args['gpa'] === 'number' ? args['gpa'] : Number.MAX_SAFE_INTEGER;
    }
    // An SNP guest is never in launch-secret: QEMU's state check answers for it too.
    if (s.kind === 'sev-snp' || s.state !== 'launch-secret') throw QmpError.generic(`SEV: Not in correct state. (LSECRET) ${s.sevStateCode.toString(16)}`);
    const hdr = glibBase64Decode(args['packet-header']);
    if (hdr.length === 0) throw QmpError.generic('SEV: Failed to decode sequence header');
    const secret = glibBase64Decode(args['secret']);
    if (secret.length === 0) throw QmpError.generic('SEV: Failed to decode data');
    checkGuestRange(guest, gpa, secret.length, rawGpa);
    if (hdr.length > KVM_MAX_SECRET || secret.length > KVM_MAX_SECRET) throw QmpError.generic("SEV: failed to inject secret ret=-22 fw_error=0 ''");
    kvmCall(() => s.launchSecret(hdr, gpa, secret), ownWording(SevFailure.injectSecret));
  };
}

function attestationReport<C extends SevGuestContext>(): Handler<C, 'query-sev-attestation-report'> {
  return (args, { sevGuest: s, session }) => {
    if (!s) throw QmpError.generic('SEV is not enabled');
    // SNP guests ask for their reports themselves (SNP_GUEST_REQUEST), as QEMU says.
    if (s.kind === 'sev-snp') throw QmpError.generic('SEV-SNP guests do not support this command');
    const modern = atLeast(session.monitor.version, '6.2.0');
    const mnonce = glibBase64Decode(args['mnonce']);
    if (mnonce.length !== 16) throw QmpError.generic(`SEV: mnonce must be 16 bytes (got ${mnonce.length})`);
    const len = kvmCall(() => queriedLength(() => s.attestationReport(mnonce, 0), 'len'), ownWording(SevFailure.attestationLength(modern)));
    return { data: kvmCall(() => s.attestationReport(mnonce, len), ownWording(SevFailure.attestation)).toString('base64') };
  };
}

export function sevGuestHandlers<C extends SevGuestContext>(): Handlers<C> {
  return {
    'query-sev': querySev<C>(),
    'query-sev-launch-measure': (_a, { sevGuest: s, session }) => {
      // Available from launch-secret on, once measured (a migrated guest never was).
      if (s && s.kind !== 'sev-snp' && s.measurement !== null && s.sevStateCode >= LAUNCH_SECRET_CODE) return { data: s.measurement };
      throw QmpError.generic(atLeast(session.monitor.version, '6.2.0') ? 'SEV launch measurement is not available' : 'Measurement is not available');
    },
    'sev-inject-launch-secret': injectSecret<C>(),
    'query-sev-attestation-report': attestationReport<C>(),
  };
}
