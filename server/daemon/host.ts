/** What every VM needs from the daemon that hosts it. */
import type { SevdConfig } from '../config/defaults.js';
import type { Version } from '../dispatch/version.js';
import type { SessionLimits } from '../qmp/session.js';
import type { SevDevice } from '../firmware/sev-device.js';
import type { SevHost } from '../sev/sev-host.js';
import type { ConnectionBudget } from '../transport/connection-budget.js';
import type { PathPolicy } from '../confinement/paths.js';
import type { FaultRegistry } from '../faults/fault-registry.js';
import type { Metrics } from '../observability/metrics.js';
import type { VmDispatchers } from './vm.js';

export interface HostContext {
  config: SevdConfig;
  version: Version;
  packageName: string;
  sessionLimits: SessionLimits;
  /** The host's SEV device (the emulated Secure Processor behind the driver). */
  sev: SevDevice;
  /** Firmware, memory controller and ASID pool that SEV guests share. */
  sevHost: SevHost;
  budget: ConnectionBudget;
  /** Unix socket file mode and owning group. */
  socketOwner: { mode: number; gid?: number };
  /** Which files monitor clients may name. */
  paths: PathPolicy;
  /** Injected faults (docs/interface.md §13). */
  faults: FaultRegistry;
  /** This daemon's metrics (its /metrics). */
  metrics: Metrics;
  /** The guest and agent command tables for this daemon's QEMU version. */
  dispatchers: VmDispatchers;
  log: { debug(obj: object, msg: string): void; warn?(obj: object, msg: string): void; isLevelEnabled?(level: string): boolean };
}
