/** The embedded default configuration (docs/interface.md §2): what `npm start` runs with. */
export interface PlatformConfig {
  generation: 'naples' | 'rome' | 'milan' | 'genoa' | 'turin';
  apiMajor: number;
  apiMinor: number;
  build: number;
  cbitpos: number;
  reducedPhysBits: number;
  maxGuests: number;
  /**
   * CPUID 0x8000001F EDX: SEV-ES guests take ASIDs below it, SEV guests from it up.
   * null: 1 where the generation has no SEV-ES, else a fifth of the ASIDs for ES.
   */
  minSevAsid: number | null;
  seed: string | null;
  /** SNP generations: the TCB the chip starts at and the SNP_CONFIG values (docs/interface.md §9). */
  snp: {
    tcb: { bootloader: number; tee: number; snp: number; microcode: number; fmc: number | null };
    reportedTcb: { bootloader: number; tee: number; snp: number; microcode: number; fmc?: number | null } | null;
    maskChipId: boolean;
    maskChipKey: boolean;
  };
}

export interface WebSocketConfig {
  host: string;
  port: number;
  token: string | null;
  /** Further tokens with their access (docs/interface.md §14). */
  tokens: { token: string; access: 'full' | 'read-only' }[];
  allowedOrigins: string[];
  /** Host names clients may use beside the listen address and `localhost` (DNS rebinding). */
  allowedHosts: string[];
  /** A token that opens `/metrics` only; null: the monitor tokens (or none) decide. */
  metricsToken: string | null;
  /** PEM files for HTTPS/WSS; null serves plain HTTP/WS. */
  tls: { cert: string; key: string } | null;
}

export interface LimitsConfig {
  maxPendingCommands: number;
  maxConsecutiveErrors: number;
  maxMessageBytes: number;
  maxConnections: number;
  maxConnectionsPerMonitor: number;
  negotiationTimeoutMs: number;
  /** The KDS endpoint: VCEK certificates kept (LRU), new ones issued per second and at once. */
  kdsVcekCache: number;
  kdsNewVcekPerSecond: number;
  kdsNewVcekBurst: number;
}

/** Which files monitor clients may name (docs/interface.md §14). null: under the state directory. */
export interface PathsConfig {
  images: string[];
  inputs: string[];
  dumps: string | string[] | null;
  migration: string | string[] | null;
  confine: 'websocket' | 'all' | 'none';
}

export interface SevdConfig {
  runDir: string;
  stateDir: string;
  qemuVersion: string;
  socketMode: number;
  /** Group owning the Unix sockets (name or gid), so a group of operators can use them with mode 0660. */
  socketGroup: string | number | null;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  websocket: WebSocketConfig | false;
  platform: PlatformConfig;
  limits: LimitsConfig;
  paths: PathsConfig;
  /** Started as root: the user and group to run as once sockets and directories exist. */
  user: string | number | null;
  group: string | number | null;
  guests: Record<string, unknown>[];
  /** FAULT objects armed from the start (docs/interface.md §13). */
  faults: Record<string, unknown>[];
  /** The launch socket (docs/interface.md §15): its group and mode ("0660" or a number). */
  launch: { group: string | number | null; mode: string | number };
}

export const DEFAULT_CONFIG: SevdConfig = {
  runDir: './run',
  stateDir: './state',
  qemuVersion: '9.2.0',
  socketMode: 0o600,
  socketGroup: null,
  logLevel: 'info',
  websocket: { host: '127.0.0.1', port: 4445, token: null, tokens: [], allowedOrigins: [], allowedHosts: [], metricsToken: null, tls: null },
  platform: {
    generation: 'milan', apiMajor: 1, apiMinor: 55, build: 21,
    cbitpos: 51, reducedPhysBits: 1, maxGuests: 509, minSevAsid: null, seed: null,
    snp: { tcb: { bootloader: 3, tee: 0, snp: 8, microcode: 115, fmc: null }, reportedTcb: null, maskChipId: false, maskChipKey: false },
  },
  limits: {
    maxPendingCommands: 64, maxConsecutiveErrors: 2000, maxMessageBytes: 64 * 1024 * 1024,
    maxConnections: 4096, maxConnectionsPerMonitor: 256, negotiationTimeoutMs: 60000,
    kdsVcekCache: 256, kdsNewVcekPerSecond: 10, kdsNewVcekBurst: 20,
  },
  paths: { images: ['/usr/share/OVMF', '/usr/share/qemu'], inputs: [], dumps: null, migration: null, confine: 'websocket' },
  user: null,
  group: null,
  faults: [],
  launch: { group: null, mode: '0600' },
  guests: [{ name: 'demo', memory: '512M', paused: true, 'sev-guest': { policy: 1 } }],
};
