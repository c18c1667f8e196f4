/**
 * JSON Schema (for ajv) generated from the QAPI definitions, so that a guest in the config
 * file and a guest given to guest-add are checked against one definition.
 */
import type { RType } from '../dispatch/compiled-schema.js';

type JsonSchema = Record<string, unknown>;

const INT_BOUNDS: Record<string, [number, number]> = {
  int8: [-128, 127], int16: [-32768, 32767], int32: [-2147483648, 2147483647],
  uint8: [0, 255], uint16: [0, 65535], uint32: [0, 4294967295],
  uint64: [0, Number.MAX_SAFE_INTEGER], size: [0, Number.MAX_SAFE_INTEGER],
  int: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER], int64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
};

export function toJsonSchema(t: RType): JsonSchema {
  switch (t.kind) {
    case 'builtin': {
      const b = INT_BOUNDS[t.name];
      if (b) return { type: 'integer', minimum: b[0], maximum: b[1] };
      return ({
        str: { type: 'string' }, bool: { type: 'boolean' }, number: { type: 'number' }, null: { type: 'null' }, any: {},
      } as Record<string, JsonSchema>)[t.name]!;
    }
    case 'enum': return { enum: [...t.values] };
    case 'array': return { type: 'array', items: toJsonSchema(t.element) };
    case 'alternate': return { anyOf: t.branches.map(toJsonSchema) };
    case 'struct':
    case 'union': {
      const properties: Record<string, JsonSchema> = {};
      const required: string[] = [];
      for (const m of t.members) {
        properties[m.name] = m.pattern ? { ...toJsonSchema(m.type), pattern: m.pattern } : toJsonSchema(m.type);
        if (!m.optional) required.push(m.name);
      }
      return { type: 'object', properties, required, additionalProperties: false };
    }
  }
}
