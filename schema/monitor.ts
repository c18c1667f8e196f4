/** Commands every QMP monitor has: negotiation, version, introspection (qapi/control.json). */
import type { Expr } from './defs.js';

export const monitorSchema = [
  { command: 'qmp_capabilities', readOnly: true, data: { '*enable': ['QMPCapability'] }, monitors: ['control', 'guest', 'launch'] },
  { enum: 'QMPCapability', data: ['oob'] },
  { struct: 'VersionTriple', data: { major: 'int', minor: 'int', micro: 'int' } },
  { struct: 'VersionInfo', data: { qemu: 'VersionTriple', package: 'str' } },
  { command: 'query-version', readOnly: true, returns: 'VersionInfo', monitors: ['control', 'guest', 'launch'] },
  { struct: 'CommandInfo', data: { name: 'str' } },
  { command: 'query-commands', readOnly: true, returns: ['CommandInfo'], monitors: ['control', 'guest'] },
  { command: 'quit', monitors: ['control', 'guest'] },
] as const satisfies readonly Expr[];
