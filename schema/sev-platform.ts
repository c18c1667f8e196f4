/** SEV platform commands: QEMU's query-sev-capabilities and sevd's control commands (docs/interface.md §5). */
import type { Expr } from './defs.js';

export const sevPlatformSchema = [
  {
    struct: 'SevCapability',
    data: {
      pdh: 'str',
      'cert-chain': 'str',
      'cpu0-id': { type: 'str', since: '7.1.0' },
      cbitpos: 'int',
      'reduced-phys-bits': 'int',
    },
  },
  { command: 'query-sev-capabilities', readOnly: true, returns: 'SevCapability', monitors: ['control', 'guest', 'launch'] },
  { enum: 'SevPlatformState', data: ['uninit', 'init', 'working'] },
  { enum: 'SevPlatformOwner', data: ['self', 'external'] },
  {
    struct: 'SevPlatformStatus',
    data: {
      'api-major': 'uint8', 'api-minor': 'uint8', 'build-id': 'uint8', state: 'SevPlatformState',
      owner: 'SevPlatformOwner', es: 'bool', 'guest-count': 'uint32',
    },
  },
  { command: 'sev-platform-status', readOnly: true, returns: 'SevPlatformStatus', monitors: ['control'] },
  {
    struct: 'SevPlatformCertificates',
    data: { pdh: 'str', pek: 'str', oca: 'str', cek: 'str', ask: 'str', ark: 'str' },
  },
  { command: 'sev-export-certs', readOnly: true, returns: 'SevPlatformCertificates', monitors: ['control'] },
  { command: 'sev-pek-gen', monitors: ['control'] },
  { command: 'sev-pdh-gen', monitors: ['control'] },
  { command: 'sev-factory-reset', monitors: ['control'] },
  { struct: 'SevPekCsr', data: { data: 'str' } },
  { command: 'sev-pek-csr', readOnly: true, returns: 'SevPekCsr', monitors: ['control'] },
  { command: 'sev-pek-cert-import', data: { 'pek-cert': 'str', 'oca-cert': 'str' }, monitors: ['control'] },
  // SEV-SNP platform (docs/interface.md §9).
  { struct: 'SnpTcb', data: { bootloader: 'uint8', tee: 'uint8', snp: 'uint8', microcode: 'uint8', '*fmc': 'uint8' } },
  { enum: 'SnpPlatformState', data: ['uninit', 'init'] },
  {
    struct: 'SnpPlatformStatus',
    data: {
      'api-major': 'uint8', 'api-minor': 'uint8', 'build-id': 'uint8', state: 'SnpPlatformState', 'rmp-initialized': 'bool',
      'guest-count': 'uint32', 'chip-id': 'str', 'mask-chip-id': 'bool', 'mask-chip-key': 'bool',
      'current-tcb': 'SnpTcb', 'reported-tcb': 'SnpTcb', 'committed-tcb': 'SnpTcb',
    },
  },
  { command: 'sev-snp-platform-status', readOnly: true, returns: 'SnpPlatformStatus', monitors: ['control'] },
  { command: 'sev-snp-set-config', data: { '*reported-tcb': 'SnpTcb', '*mask-chip-id': 'bool', '*mask-chip-key': 'bool' }, monitors: ['control'] },
  { command: 'sev-snp-commit', monitors: ['control'] },
  { command: 'sev-snp-set-tcb', data: 'SnpTcb', boxed: true, monitors: ['control'] },
] as const satisfies readonly Expr[];
