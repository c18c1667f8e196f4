/**
 * QEMU's argument errors (qapi/qobject-input-visitor.c, qapi-visit-core.c), exact texts:
 * what the input visitor answers for a member that is missing, unexpected or of the
 * wrong type or value.
 */
import { QmpError } from './qmp-error.js';

export const ArgumentErrors = {
  missing: (name: string) => QmpError.generic(`Parameter '${name}' is missing`),
  unexpected: (name: string) => QmpError.generic(`Parameter '${name}' is unexpected`),
  invalidType: (name: string, expected: string) => QmpError.generic(`Invalid parameter type for '${name}', expected: ${expected}`),
  invalidValue: (name: string, expected: string) => QmpError.generic(`Parameter '${name}' expects ${expected}`),
  enumValue: (name: string, value: string) => QmpError.generic(`Parameter '${name}' does not accept value '${value}'`),
  enumValueLegacy: (value: string) => QmpError.generic(`Invalid parameter '${value}'`),
} as const;
