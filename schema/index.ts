/** The whole QMP schema, in definition order (introspection numbering follows it). */
import type { Expr } from './defs.js';
import { monitorSchema } from './monitor.js';
import { runStateSchema } from './run-state.js';
import { controlSchema } from './control.js';
import { agentSchema } from './agent.js';
import { introspectSchema } from './introspect.js';
import { sevPlatformSchema } from './sev-platform.js';
import { sevSchema } from './sev.js';
import { migrationSchema } from './migration.js';
import { faultSchema } from './faults.js';
import { machineSchema } from './machine.js';

/** The schema with its literal types: what the server derives handler types from. */
export const schemaLiterals = [
  ...monitorSchema,
  ...runStateSchema,
  ...machineSchema,
  ...controlSchema,
  ...sevPlatformSchema,
  ...sevSchema,
  ...migrationSchema,
  ...faultSchema,
  ...agentSchema,
  ...introspectSchema,
] as const satisfies readonly Expr[];

export const schema: readonly Expr[] = schemaLiterals;

export * from './defs.js';
