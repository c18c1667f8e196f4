/** The SEV guest commands (QEMU qapi/misc-target.json; qapi/misc-i386.json from QEMU 10.1). */
import type { Expr } from './defs.js';

export const sevSchema = [
  { enum: 'SevGuestType', data: ['sev', 'sev-snp'], since: '9.1.0' },
  {
    struct: 'SevInfo',
    before: '9.1.0',
    data: {
      enabled: 'bool', 'api-major': 'uint8', 'api-minor': 'uint8', 'build-id': 'uint8',
      policy: 'uint32', state: 'SevState', handle: 'uint32',
    },
  },
  {
    union: 'SevInfo',
    since: '9.1.0',
    base: { enabled: 'bool', 'api-major': 'uint8', 'api-minor': 'uint8', 'build-id': 'uint8', state: 'SevState', 'sev-type': 'SevGuestType' },
    discriminator: 'sev-type',
    data: { sev: 'SevGuestInfo', 'sev-snp': 'SevSnpGuestInfo' },
  },
  { struct: 'SevGuestInfo', since: '9.1.0', data: { policy: 'uint32', handle: 'uint32' } },
  { struct: 'SevSnpGuestInfo', since: '9.1.0', data: { 'snp-policy': 'uint64' } },
  { command: 'query-sev', readOnly: true, returns: 'SevInfo', monitors: ['guest'] },
  { struct: 'SevLaunchMeasureInfo', data: { data: 'str' } },
  { command: 'query-sev-launch-measure', readOnly: true, returns: 'SevLaunchMeasureInfo', monitors: ['guest'] },
  {
    command: 'sev-inject-launch-secret',
    since: '6.0.0',
    data: { 'packet-header': 'str', secret: 'str', '*gpa': 'uint64' },
    monitors: ['guest'],
  },
  { struct: 'SevAttestationReport', since: '6.1.0', data: { data: 'str' } },
  {
    command: 'query-sev-attestation-report',
    since: '6.1.0',
    data: { mnonce: 'str' },
    returns: 'SevAttestationReport',
    monitors: ['guest'],
    readOnly: true,
  },
  { struct: 'GuestSecretInfo', data: { guid: 'str', data: 'str' } },
  { command: 'guest-get-secrets', readOnly: true, returns: ['GuestSecretInfo'], monitors: ['agent'] },
] as const satisfies readonly Expr[];
