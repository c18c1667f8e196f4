/**
 * The QMP error catalogue: QEMU's error classes and the exact texts of every
 * protocol-level error (QEMU docs/interop/qmp-spec.rst, "Error"). QmpError itself and the argument
 * errors live in server/errors/ (every layer throws them); the session turns them into {"error": ...}.
 */
import { QmpError } from '../errors/qmp-error.js';
import { ArgumentErrors } from '../errors/argument-errors.js';

// Kept here for the protocol floor's own files; the layers below import server/errors/.
export { QmpError, type ErrorClass } from '../errors/qmp-error.js';

export const Errors = {
  notAnObject: () => QmpError.generic('QMP input must be a JSON object'),
  memberNotString: (key: string) => QmpError.generic(`QMP input member '${key}' must be a string`),
  memberClash: (key: string, earlier: string) => QmpError.generic(`QMP input member '${key}' clashes with '${earlier}'`),
  argumentsNotObject: () => QmpError.generic("QMP input member 'arguments' must be an object"),
  memberUnexpected: (key: string) => QmpError.generic(`QMP input member '${key}' is unexpected`),
  lacksExecute: () => QmpError.generic("QMP input lacks member 'execute'"),
  commandNotFound: (name: string) => new QmpError('CommandNotFound', `The command ${name} has not been found`),
  expectingNegotiation: () => new QmpError('CommandNotFound', "Expecting capabilities negotiation with 'qmp_capabilities'"),
  negotiationComplete: () => new QmpError('CommandNotFound', 'Capabilities negotiation is already complete, command ignored'),
  capabilityUnavailable: (names: string[]) => QmpError.generic(`Capability ${names.join(', ')} not available`),
  noOob: (name: string) => QmpError.generic(`The command ${name} does not support OOB`),
  readOnly: (name: string) => QmpError.generic(`Command '${name}' is not allowed with a read-only token`),
  ...ArgumentErrors,
} as const;
