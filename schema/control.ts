/** sevd's control monitor: the guest registry (docs/interface.md §5). */
import type { Expr } from './defs.js';

export const GUEST_NAME_PATTERN = '^[A-Za-z0-9_.-]{1,64}$';

/** The sev-guest object's properties every QEMU version has. */
const sevGuestProperties = {
  '*sev-device': 'str',
  '*dh-cert-file': 'str',
  '*session-file': 'str',
  '*policy': 'uint32',
  '*handle': 'uint32',
  '*cbitpos': 'uint32',
  '*reduced-phys-bits': 'uint32',
  '*kernel-hashes': 'bool',
} as const;

export const controlSchema = [
  { alternate: 'StrOrNull', data: { s: 'str', n: 'null' } },
  { alternate: 'GuestMemorySize', data: { bytes: 'size', text: 'str' } },
  { enum: 'OnOffAuto', data: ['auto', 'on', 'off'] },
  {
    // qapi/qom.json SevSnpGuestProperties (9.1+); base64 members as QEMU takes them.
    struct: 'SevSnpGuestProperties',
    since: '9.1.0',
    data: {
      '*sev-device': 'str', '*cbitpos': 'uint32', '*reduced-phys-bits': 'uint32', '*kernel-hashes': 'bool',
      '*policy': 'uint64', '*guest-visible-workarounds': 'str', '*id-block': 'str', '*id-auth': 'str',
      '*author-key-enabled': 'bool', '*host-data': 'str', '*vcek-disabled': 'bool',
      '*certs-filename': 'str', '*secure-tsc': 'bool',
    },
  },
  // legacy-vm-type: none before 9.1, a bool in 9.1, OnOffAuto from 9.2 (qapi/qom.json).
  { struct: 'SevGuestProperties', before: '9.1.0', data: sevGuestProperties },
  { struct: 'SevGuestProperties', since: '9.1.0', before: '9.2.0', data: { ...sevGuestProperties, '*legacy-vm-type': 'bool' } },
  { struct: 'SevGuestProperties', since: '9.2.0', data: { ...sevGuestProperties, '*legacy-vm-type': 'OnOffAuto' } },
  { struct: 'GuestFirmwareNodes', data: { format: 'str', storage: 'str' } },
  {
    struct: 'GuestSpec',
    data: {
      name: { type: 'str', pattern: GUEST_NAME_PATTERN },
      '*memory': 'GuestMemorySize',
      '*firmware': 'StrOrNull',
      '*kernel': 'StrOrNull',
      '*initrd': 'StrOrNull',
      '*append': 'StrOrNull',
      '*paused': 'bool',
      '*incoming': 'StrOrNull',
      '*smp': 'uint32',
      '*cpu': 'str',
      // sevd's extension (docs/interface.md §15): the block-node names of the firmware flash.
      '*firmware-nodes': 'GuestFirmwareNodes',
      '*sev-snp-guest': { type: 'SevSnpGuestProperties', since: '9.1.0' },
      '*sev-guest': 'SevGuestProperties',
    },
  },
  { command: 'guest-add', data: 'GuestSpec', boxed: true, monitors: ['control'] },
  // The launch socket's guest-add (docs/interface.md §15): GUEST_SPEC, plus what a launcher
  // running as libvirt's QEMU user can read and sevd cannot (libvirt's per-domain directory):
  // the sev-guest object's dh-cert-file and session-file contents, base64 text as in the files.
  { struct: 'LaunchSevInputs', data: { '*dh-cert': 'str', '*session': 'str' } },
  { struct: 'LaunchGuestSpec', base: 'GuestSpec', data: { '*sev-inputs': 'LaunchSevInputs', '*pid': 'int' } },
  { command: 'guest-add', data: 'LaunchGuestSpec', boxed: true, monitors: ['launch'] },
  { command: 'guest-del', data: { name: 'str' }, monitors: ['control'] },
  {
    struct: 'GuestInfo',
    data: {
      name: 'str', status: 'RunState', running: 'bool', 'sev-state': 'SevStateOrNull',
      'qmp-path': 'str', 'qga-path': 'str',
    },
  },
  { alternate: 'SevStateOrNull', data: { state: 'SevState', n: 'null' } },
  {
    enum: 'SevState',
    data: ['uninit', 'launch-update', 'launch-secret', 'running', 'send-update', 'receive-update'],
  },
  { command: 'query-guests', readOnly: true, returns: ['GuestInfo'], monitors: ['control'] },
  // The operator view's memory picture (docs/interface.md §12).
  { enum: 'GuestPageKind', data: ['private', 'shared', 'vmsa', 'untouched'] },
  { struct: 'GuestMemoryRun', data: { gpa: 'uint64', pages: 'uint64', kind: 'GuestPageKind' } },
  { command: 'query-guest-memory', readOnly: true, data: { name: 'str', '*gpa': 'uint64', '*size': 'uint64' }, returns: ['GuestMemoryRun'], monitors: ['control'] },
  // sevd's extension: the emulated host's ASIDs (CPUID 0x8000001F) and who holds them.
  { struct: 'GuestAsid', data: { name: 'str', asid: 'int' } },
  { struct: 'AsidInfo', data: { 'max-asid': 'int', 'min-sev-asid': 'int', 'in-use': ['GuestAsid'], free: 'int' } },
  { command: 'query-asids', readOnly: true, returns: 'AsidInfo', monitors: ['control'] },
] as const satisfies readonly Expr[];
