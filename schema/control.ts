/** sevd's control monitor: the guest registry (interface.md §5). */
import type { Expr } from './defs.js';

export const GUEST_NAME_PATTERN = '^[A-Za-z0-9_.-]{1,64}$';

export const controlSchema: readonly Expr[] = [
  { alternate: 'StrOrNull', data: { s: 'str', n: 'null' } },
  { alternate: 'GuestMemorySize', data: { bytes: 'size', text: 'str' } },
  {
    struct: 'SevGuestProperties',
    data: {
      '*sev-device': 'str',
      '*dh-cert-file': 'str',
      '*session-file': 'str',
      '*policy': 'uint32',
      '*handle': 'uint32',
      '*cbitpos': 'uint32',
      '*reduced-phys-bits': 'uint32',
      '*kernel-hashes': 'bool',
    },
  },
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
      '*sev-guest': 'SevGuestProperties',
    },
  },
  { command: 'guest-add', data: 'GuestSpec', boxed: true, monitors: ['control'] },
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
  { command: 'query-guests', returns: ['GuestInfo'], monitors: ['control'] },
];
