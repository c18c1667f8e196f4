/**
 * The QMP error catalogue: QEMU's error classes and the exact texts of every
 * protocol-level error (QEMU docs/interop/qmp-spec.rst, "Error"). Handlers throw QmpError; the session turns
 * it into {"error": {"class", "desc"}}.
 */
export type ErrorClass = 'GenericError' | 'CommandNotFound' | 'DeviceNotActive' | 'DeviceNotFound' | 'KVMMissingCap';

export class QmpError extends Error {
  constructor(readonly cls: ErrorClass, readonly desc: string) {
    super(desc);
    this.name = 'QmpError';
  }

  static generic(desc: string): QmpError {
    return new QmpError('GenericError', desc);
  }
}

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
  // Argument errors (qapi/qobject-input-visitor.c, qapi-visit-core.c).
  missing: (name: string) => QmpError.generic(`Parameter '${name}' is missing`),
  unexpected: (name: string) => QmpError.generic(`Parameter '${name}' is unexpected`),
  invalidType: (name: string, expected: string) => QmpError.generic(`Invalid parameter type for '${name}', expected: ${expected}`),
  invalidValue: (name: string, expected: string) => QmpError.generic(`Parameter '${name}' expects ${expected}`),
  enumValue: (name: string, value: string) => QmpError.generic(`Parameter '${name}' does not accept value '${value}'`),
  enumValueLegacy: (value: string) => QmpError.generic(`Invalid parameter '${value}'`),
} as const;
