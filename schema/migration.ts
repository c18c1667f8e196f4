/** Migration (QEMU qapi/migration.json) with the parameters of AMD's SEV live-migration series (AMDESE/qemu sev_live_migration_v4_1). */
import type { Expr, Members } from './defs.js';

/** Members shared by MigrationParameters (output) and MigrateSetParameters (input). */
const params = (tls: string, sev: string): Members => ({
  '*announce-initial': 'size',
  '*announce-max': 'size',
  '*announce-rounds': 'size',
  '*announce-step': 'size',
  '*compress-level': { type: 'uint8', before: '9.1.0' },
  '*compress-threads': { type: 'uint8', before: '9.1.0' },
  '*compress-wait-thread': { type: 'bool', before: '9.1.0' },
  '*decompress-threads': { type: 'uint8', before: '9.1.0' },
  '*throttle-trigger-threshold': 'uint8',
  '*cpu-throttle-initial': 'uint8',
  '*cpu-throttle-increment': 'uint8',
  '*cpu-throttle-tailslow': 'bool',
  '*tls-creds': tls,
  '*tls-hostname': tls,
  '*tls-authz': tls,
  '*max-bandwidth': 'size',
  '*downtime-limit': 'uint64',
  '*x-checkpoint-delay': 'uint32',
  '*block-incremental': { type: 'bool', before: '9.1.0' },
  '*multifd-channels': 'uint8',
  '*xbzrle-cache-size': 'size',
  '*max-postcopy-bandwidth': 'size',
  '*max-cpu-throttle': 'uint8',
  '*multifd-compression': 'MultiFDCompression',
  '*multifd-zlib-level': 'uint8',
  '*multifd-zstd-level': 'uint8',
  '*sev-pdh': sev,
  '*sev-plat-cert': sev,
  '*sev-amd-cert': sev,
});

export const migrationSchema = [
  {
    enum: 'MigrationStatus',
    data: ['none', 'setup', 'cancelling', 'cancelled', 'active', 'postcopy-active', 'postcopy-paused', 'postcopy-recover',
      'completed', 'failed', 'colo', 'pre-switchover', 'device', 'wait-unplug'],
  },
  {
    enum: 'MigrationCapability',
    data: [
      'xbzrle', 'rdma-pin-all', 'auto-converge', { name: 'zero-blocks', before: '9.1.0' }, { name: 'compress', before: '9.1.0' },
      'events', 'postcopy-ram', 'x-colo', 'release-ram', { name: 'block', before: '9.1.0' }, 'return-path',
      'pause-before-switchover', 'multifd', 'dirty-bitmaps', 'postcopy-blocktime', 'late-block-activate', 'x-ignore-shared',
      'validate-uuid', 'background-snapshot', 'zero-copy-send', 'postcopy-preempt', { name: 'switchover-ack', since: '8.1.0' },
      { name: 'dirty-limit', since: '8.1.0' }, { name: 'mapped-ram', since: '9.0.0' },
    ],
  },
  { enum: 'MultiFDCompression', data: ['none', 'zlib', 'zstd'] },
  { struct: 'MigrationCapabilityStatus', data: { capability: 'MigrationCapability', state: 'bool' } },
  { command: 'migrate-set-capabilities', data: { capabilities: ['MigrationCapabilityStatus'] }, monitors: ['guest'] },
  { command: 'query-migrate-capabilities', readOnly: true, returns: ['MigrationCapabilityStatus'], monitors: ['guest'] },
  { struct: 'MigrationParameters', data: params('str', 'str') },
  { struct: 'MigrateSetParameters', data: params('StrOrNull', 'StrOrNull') },
  { command: 'migrate-set-parameters', data: 'MigrateSetParameters', boxed: true, monitors: ['guest'] },
  { command: 'query-migrate-parameters', readOnly: true, returns: 'MigrationParameters', monitors: ['guest'] },
  {
    struct: 'MigrationStats',
    data: {
      transferred: 'int', remaining: 'int', total: 'int', duplicate: 'int', normal: 'int', 'normal-bytes': 'int',
      'dirty-pages-rate': 'int', mbps: 'number', 'dirty-sync-count': 'int', 'postcopy-requests': 'int', 'page-size': 'int',
      'multifd-bytes': 'uint64', 'pages-per-second': 'uint64', 'precopy-bytes': 'uint64', 'downtime-bytes': 'uint64', 'postcopy-bytes': 'uint64',
    },
  },
  {
    struct: 'MigrationInfo',
    data: {
      '*status': 'MigrationStatus', '*ram': 'MigrationStats', '*total-time': 'int', '*expected-downtime': 'int',
      '*downtime': 'int', '*setup-time': 'int', '*error-desc': 'str', '*blocked-reasons': ['str'],
    },
  },
  { command: 'query-migrate', readOnly: true, returns: 'MigrationInfo', monitors: ['guest'] },
  { command: 'migrate', data: { uri: 'str', '*blk': 'bool', '*inc': 'bool', '*detach': 'bool', '*resume': 'bool' }, before: '9.0.0', monitors: ['guest'] },
  { command: 'migrate', data: { '*uri': 'str', '*blk': 'bool', '*inc': 'bool', '*detach': 'bool', '*resume': 'bool' }, since: '9.0.0', monitors: ['guest'] },
  { command: 'migrate-incoming', data: { '*uri': 'str' }, monitors: ['guest'] },
  { command: 'migrate_cancel', monitors: ['guest'] },
  { event: 'MIGRATION', data: { status: 'MigrationStatus' }, monitors: ['guest'] },
  { event: 'MIGRATION_PASS', data: { pass: 'int' }, monitors: ['guest'] },
] as const satisfies readonly Expr[];
