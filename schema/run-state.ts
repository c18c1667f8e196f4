/** A guest's run state and machine commands (qapi/run-state.json, qapi/machine.json, qapi/misc.json). */
import type { Expr } from './defs.js';

export const runStateSchema = [
  // qapi/machine.json (CpuInstanceProperties: schema/machine.ts).
  { enum: 'SysEmuTarget', data: ['x86_64'] },
  { struct: 'CpuInfoFast', data: { 'cpu-index': 'int', 'qom-path': 'str', 'thread-id': 'int', '*props': 'CpuInstanceProperties', target: 'SysEmuTarget' } },
  { command: 'query-cpus-fast', readOnly: true, returns: ['CpuInfoFast'], monitors: ['guest'] },
  {
    enum: 'RunState',
    data: ['debug', 'inmigrate', 'internal-error', 'io-error', 'paused', 'postmigrate', 'prelaunch',
      'finish-migrate', 'restore-vm', 'running', 'save-vm', 'shutdown', 'suspended', 'watchdog',
      'guest-panicked', 'colo'],
  },
  {
    enum: 'ShutdownCause',
    data: ['none', 'host-error', 'host-qmp-quit', 'host-qmp-system-reset', 'host-signal', 'host-ui',
      'guest-shutdown', 'guest-reset', 'guest-panic', 'subsystem-reset', 'snapshot-load'],
  },
  {
    struct: 'StatusInfo',
    data: {
      running: 'bool',
      '*singlestep': { type: 'bool', before: '9.0.0', features: ['deprecated'] },
      status: 'RunState',
    },
  },
  { command: 'query-status', readOnly: true, returns: 'StatusInfo', monitors: ['guest'] },
  { event: 'SHUTDOWN', data: { guest: 'bool', reason: 'ShutdownCause' }, monitors: ['guest'] },
  { event: 'POWERDOWN', monitors: ['guest'] },
  { event: 'RESET', data: { guest: 'bool', reason: 'ShutdownCause' }, monitors: ['guest'] },
  { event: 'STOP', monitors: ['guest'] },
  { event: 'RESUME', monitors: ['guest'] },
  { struct: 'NameInfo', data: { '*name': 'str' } },
  { command: 'query-name', readOnly: true, returns: 'NameInfo', monitors: ['guest'] },
  { struct: 'UuidInfo', data: { UUID: 'str' } },
  { command: 'query-uuid', readOnly: true, returns: 'UuidInfo', monitors: ['guest'] },
  { struct: 'KvmInfo', data: { enabled: 'bool', present: 'bool' } },
  { command: 'query-kvm', readOnly: true, returns: 'KvmInfo', monitors: ['guest'] },
  { command: 'stop', monitors: ['guest'] },
  { command: 'cont', monitors: ['guest'] },
  { command: 'system_reset', monitors: ['guest'] },
  { command: 'system_powerdown', monitors: ['guest'] },
  // Not readOnly: HMP can change anything; server/qmp/read-only.ts lets `info …` lines through.
  {
    command: 'human-monitor-command',
    data: { 'command-line': 'str', '*cpu-index': 'int' },
    returns: 'str',
    monitors: ['guest'],
  },
  {
    command: 'memsave',
    data: { val: 'int', size: 'int', filename: 'str', '*cpu-index': 'int' },
    monitors: ['guest'],
  },
  { command: 'pmemsave', data: { val: 'int', size: 'int', filename: 'str' }, monitors: ['guest'] },
] as const satisfies readonly Expr[];
