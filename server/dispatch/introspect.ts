/**
 * query-qmp-schema, generated as QEMU's scripts/qapi/introspect.py does in its default
 * (masked) mode: commands and events first in definition order, then every type they
 * reach in order of first use; non-builtin type names replaced by decimal strings,
 * every integer type shown as builtin 'int'.
 */
import type { CompiledSchema, RCommand, REvent, RMember, RType } from './compiled-schema.js';
import type { CommandReturns, ReturnedType } from './schema-types.js';

export type SchemaInfo = CommandReturns<'query-qmp-schema'>[number];

const JSON_TYPES: Record<string, ReturnedType<'JSONType'>> = {
  str: 'string', number: 'number', bool: 'boolean', null: 'null', any: 'value', int: 'int',
};
const INT_TYPES = new Set(['int', 'int8', 'int16', 'int32', 'int64', 'uint8', 'uint16', 'uint32', 'uint64', 'size']);

export function introspect(schema: CompiledSchema): SchemaInfo[] {
  const used: RType[] = [];
  const usedKeys = new Map<string, RType>();
  const names = new Map<string, string>();
  const trees: SchemaInfo[] = [];

  const key = (t: RType): string => (t.kind === 'array' ? `[${key(t.element)}]` : t.name);
  const masked = (name: string): string => {
    let n = names.get(name);
    if (n === undefined) {
      n = String(names.size);
      names.set(name, n);
    }
    return n;
  };
  const intType: RType = { kind: 'builtin', name: 'int' };
  const use = (t: RType): string => {
    if (t.kind === 'builtin' && INT_TYPES.has(t.name)) t = intType;
    else if (t.kind === 'array' && t.element.kind === 'builtin' && INT_TYPES.has(t.element.name)) {
      t = { kind: 'array', name: 'intList', element: intType };
    }
    const k = key(t);
    if (!usedKeys.has(k)) {
      usedKeys.set(k, t);
      used.push(t);
    }
    if (t.kind === 'builtin') return t.name;
    if (t.kind === 'array') return '[' + use(t.element) + ']';
    return masked(t.name);
  };
  const tree = (info: SchemaInfo, features: readonly string[] = []): void => {
    trees.push(features.length ? { ...info, features: [...features] } : info);
  };
  const member = (m: RMember): ReturnedType<'SchemaInfoObjectMember'> => ({
    name: m.name,
    type: use(m.type),
    ...(m.optional ? { default: null } : {}),
    ...(m.features.length ? { features: [...m.features] } : {}),
  });

  for (const e of schema.entities) {
    if ('allowOob' in e) {
      const c = e as RCommand;
      const argType = use(c.noArgs ? schema.emptyObject : c.args);
      const retType = use(c.returns ?? schema.emptyObject);
      tree({ name: c.name, 'meta-type': 'command', 'arg-type': argType, 'ret-type': retType, ...(c.allowOob ? { 'allow-oob': true } : {}) }, c.features);
    } else {
      const ev = e as REvent;
      tree({ name: ev.name, 'meta-type': 'event', 'arg-type': use(ev.data ?? schema.emptyObject) });
    }
  }
  // The list grows while it is walked, as in introspect.py's visit_end().
  for (let i = 0; i < used.length; i++) {
    const t = used[i]!;
    switch (t.kind) {
      case 'builtin':
        tree({ name: t.name, 'meta-type': 'builtin', 'json-type': JSON_TYPES[t.name]! });
        break;
      case 'enum':
        tree({ name: masked(t.name), 'meta-type': 'enum', members: t.values.map((v) => ({ name: v })), values: [...t.values] }, t.features);
        break;
      case 'array': {
        const element = use(t.element);
        tree({ name: `[${element}]`, 'meta-type': 'array', 'element-type': element });
        break;
      }
      case 'struct':
        tree({ name: masked(t.name), 'meta-type': 'object', members: t.members.map(member) }, t.features);
        break;
      case 'union': {
        const members = t.members.map(member);
        const variants = t.variants.map((v) => ({ case: v.case, type: use(v.type) }));
        const name = masked(t.name);
        tree({ name, 'meta-type': 'object', members, tag: t.discriminator, variants }, t.features);
        break;
      }
      case 'alternate':
        tree({ name: masked(t.name), 'meta-type': 'alternate', members: t.branches.map((b) => ({ type: use(b) })) }, t.features);
        break;
    }
  }
  return trees;
}
