/** Types of query-qmp-schema itself (qapi/introspect.json), so it can describe itself. */
import type { Expr } from './defs.js';

export const introspectSchema = [
  { command: 'query-qmp-schema', readOnly: true, returns: ['SchemaInfo'], monitors: ['control', 'guest'] },
  { enum: 'SchemaMetaType', data: ['builtin', 'enum', 'array', 'object', 'alternate', 'command', 'event'] },
  {
    union: 'SchemaInfo',
    base: { name: 'str', 'meta-type': 'SchemaMetaType', '*features': ['str'] },
    discriminator: 'meta-type',
    data: {
      builtin: 'SchemaInfoBuiltin', enum: 'SchemaInfoEnum', array: 'SchemaInfoArray', object: 'SchemaInfoObject',
      alternate: 'SchemaInfoAlternate', command: 'SchemaInfoCommand', event: 'SchemaInfoEvent',
    },
  },
  { struct: 'SchemaInfoBuiltin', data: { 'json-type': 'JSONType' } },
  { enum: 'JSONType', data: ['string', 'number', 'int', 'boolean', 'null', 'object', 'array', 'value'] },
  { struct: 'SchemaInfoEnum', data: { members: ['SchemaInfoEnumMember'], values: { type: ['str'], features: ['deprecated'] } } },
  { struct: 'SchemaInfoEnumMember', data: { name: 'str', '*features': ['str'] } },
  { struct: 'SchemaInfoArray', data: { 'element-type': 'str' } },
  { struct: 'SchemaInfoObject', data: { members: ['SchemaInfoObjectMember'], '*tag': 'str', '*variants': ['SchemaInfoObjectVariant'] } },
  { struct: 'SchemaInfoObjectMember', data: { name: 'str', type: 'str', '*default': 'any', '*features': ['str'] } },
  { struct: 'SchemaInfoObjectVariant', data: { case: 'str', type: 'str' } },
  { struct: 'SchemaInfoAlternate', data: { members: ['SchemaInfoAlternateMember'] } },
  { struct: 'SchemaInfoAlternateMember', data: { type: 'str' } },
  { struct: 'SchemaInfoCommand', data: { 'arg-type': 'str', 'ret-type': 'str', '*allow-oob': 'bool' } },
  { struct: 'SchemaInfoEvent', data: { 'arg-type': 'str' } },
] as const satisfies readonly Expr[];
