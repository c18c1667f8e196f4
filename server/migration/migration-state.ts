/**
 * A VM's migration settings and progress as QEMU keeps them: parameters (with the SEV
 * series' sev-pdh / sev-plat-cert / sev-amd-cert), capabilities, and the status and
 * statistics that query-migrate reports.
 */
export const DEFAULT_PARAMETERS: Record<string, string | number | boolean> = {
  'announce-initial': 50, 'announce-max': 550, 'announce-rounds': 5, 'announce-step': 100,
  'compress-level': 1, 'compress-threads': 8, 'compress-wait-thread': true, 'decompress-threads': 2,
  'throttle-trigger-threshold': 50, 'cpu-throttle-initial': 20, 'cpu-throttle-increment': 10, 'cpu-throttle-tailslow': false,
  'tls-creds': '', 'tls-hostname': '', 'tls-authz': '',
  'max-bandwidth': 134217728, 'downtime-limit': 300, 'x-checkpoint-delay': 20000, 'block-incremental': false,
  'multifd-channels': 2, 'xbzrle-cache-size': 67108864, 'max-postcopy-bandwidth': 0, 'max-cpu-throttle': 99,
  'multifd-compression': 'none', 'multifd-zlib-level': 1, 'multifd-zstd-level': 1,
  'sev-pdh': '', 'sev-plat-cert': '', 'sev-amd-cert': '',
};

export type MigrationStatus = 'none' | 'setup' | 'cancelling' | 'cancelled' | 'active' | 'completed' | 'failed';

export interface RamStats {
  transferred: number;
  remaining: number;
  total: number;
  duplicate: number;
  normal: number;
  passes: number;
  mbps: number;
}

export class MigrationState {
  readonly parameters: Record<string, string | number | boolean> = { ...DEFAULT_PARAMETERS };
  readonly capabilities = new Map<string, boolean>();
  status: MigrationStatus = 'none';
  errorDesc: string | null = null;
  startedAt = 0;
  setupTime = 0;
  endedAt = 0;
  downtime = 0;
  expectedDowntime = 0;
  ram: RamStats = { transferred: 0, remaining: 0, total: 0, duplicate: 0, normal: 0, passes: 0, mbps: 0 };
  /** Emits MIGRATION when the `events` capability is on (or always, for the destination's setup). */
  constructor(private readonly emit: (event: string, data: Record<string, unknown>) => void) {}

  get eventsOn(): boolean {
    return this.capabilities.get('events') === true;
  }

  get active(): boolean {
    return this.status === 'setup' || this.status === 'active' || this.status === 'cancelling';
  }

  setStatus(s: MigrationStatus, force = false): void {
    this.status = s;
    if (this.eventsOn || force) this.emit('MIGRATION', { status: s });
  }

  pass(n: number): void {
    this.ram.passes = n;
    if (this.eventsOn) this.emit('MIGRATION_PASS', { pass: n });
  }

  reset(): void {
    this.errorDesc = null;
    this.startedAt = Date.now();
    this.setupTime = 0;
    this.endedAt = 0;
    this.downtime = 0;
    this.ram = { transferred: 0, remaining: 0, total: 0, duplicate: 0, normal: 0, passes: 0, mbps: 0 };
  }

  /** query-migrate's MigrationInfo for the current status (QEMU qapi/migration.json, MigrationInfo). */
  info(): Record<string, unknown> {
    if (this.status === 'none') return {};
    const base: Record<string, unknown> = { status: this.status };
    if (this.status === 'failed') return { ...base, 'error-desc': this.errorDesc ?? 'migration failed' };
    if (this.status === 'cancelled' || this.status === 'setup') return base;
    const now = this.endedAt || Date.now();
    const r = this.ram;
    const ram = {
      transferred: r.transferred, remaining: r.remaining, total: r.total, duplicate: r.duplicate, normal: r.normal,
      'normal-bytes': r.normal * 4096, 'dirty-pages-rate': 0, mbps: r.mbps, 'dirty-sync-count': r.passes,
      'postcopy-requests': 0, 'page-size': 4096, 'multifd-bytes': 0, 'pages-per-second': 0,
      'precopy-bytes': r.transferred, 'downtime-bytes': 0, 'postcopy-bytes': 0,
    };
    const out: Record<string, unknown> = { ...base, 'total-time': now - this.startedAt, 'setup-time': this.setupTime, ram };
    if (this.status === 'completed') out['downtime'] = this.downtime;
    else out['expected-downtime'] = this.expectedDowntime;
    return out;
  }
}
