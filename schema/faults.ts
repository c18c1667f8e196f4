/** Fault injection on the control monitor (docs/interface.md §13). */
import type { Expr } from './defs.js';

const firmwareFault = { command: 'str', status: 'FirmwareStatusCode', '*guest': 'str', '*count': 'uint32', '*delay-ms': 'uint32' } as const;
const migrationFault = { guest: 'str', 'after-pages': 'uint64', action: 'MigrationFaultAction' } as const;
const monitorFault = { '*guest': 'str', action: 'MonitorFaultAction', '*delay-ms': 'uint32', '*count': 'uint32' } as const;

export const faultSchema = [
  { enum: 'FaultTarget', data: ['firmware', 'migration', 'monitor'] },
  { enum: 'MigrationFaultAction', data: ['cut', 'corrupt', 'stall'] },
  { enum: 'MonitorFaultAction', data: ['delay', 'disconnect'] },
  { alternate: 'FirmwareStatusCode', data: { code: 'uint32', name: 'str' } },
  { struct: 'FirmwareFault', data: firmwareFault },
  { struct: 'MigrationFault', data: migrationFault },
  { struct: 'MonitorFault', data: monitorFault },
  {
    union: 'Fault',
    base: { target: 'FaultTarget' },
    discriminator: 'target',
    data: { firmware: 'FirmwareFault', migration: 'MigrationFault', monitor: 'MonitorFault' },
  },
  { struct: 'FaultId', data: { id: 'int' } },
  { command: 'inject-fault', data: 'Fault', boxed: true, returns: 'FaultId', monitors: ['control'] },
  {
    union: 'FaultInfo',
    // remaining: uses left, -1 for a fault armed until cleared (count 0).
    base: { target: 'FaultTarget', id: 'int', fired: 'int', remaining: 'int' },
    discriminator: 'target',
    data: { firmware: 'FirmwareFault', migration: 'MigrationFault', monitor: 'MonitorFault' },
  },
  { command: 'query-faults', readOnly: true, returns: ['FaultInfo'], monitors: ['control'] },
  { command: 'clear-faults', data: { '*id': 'int' }, monitors: ['control'] },
  { event: 'SEVD_FAULT', data: { id: 'int', target: 'FaultTarget', detail: 'str' }, monitors: ['control'] },
] as const satisfies readonly Expr[];
