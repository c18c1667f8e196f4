/**
 * query-qmp-schema, generated as QEMU's scripts/qapi/introspect.py does in its default
 * (masked) mode: commands and events first in definition order, then every type they
 * reach in order of first use; non-builtin type names replaced by decimal strings,
 * every integer type shown as builtin 'int'.
 */
import type { OutValue } from '../qmp/json/writer.js';
import type { CompiledSchema, RCommand, REvent, RMember, RType } from './compiled-schema.js';

const JSON_TYPES: Record<string, string> = {
  str: 'string', number: 'number', bool: 'boolean', null: 'null', any: 'value', int: 'int',
};
const INT_TYPES = new Set(['int', 'int8', 'int16', 'int32', 'int64', 'uint8', 'uint16', 'uint32', 'uint64', 'size']);

type Entry = Record<string, OutValue>;

export function introspect(schema: CompiledSchema): Entry[] {
  const used: RType[] = [];
  const usedKeys = new Map<string, RType>();
  const names = new Map<string, string>();
  const trees: Entry[] = [];

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
  const tree = (name: string, metaType: string, obj: Entry, features: readonly string[] = []): void => {
    obj['name'] = name;
    obj['meta-type'] = metaType;
    if (features.length) obj['features'] = [...features];
    trees.push(obj);
  };
  const member = (m: RMember): Entry => {
    const o: Entry = { name: m.name, type: use(m.type) };
    if (m.optional) o['default'] = null;
    if (m.features.length) o['features'] = [...m.features];
    return o;
  };

  for (const e of schema.entities) {
    if ('allowOob' in e) {
      const c = e as RCommand;
      const o: Entry = {
        'arg-type': use(c.noArgs ? schema.emptyObject : c.args),
        'ret-type': use(c.returns ?? schema.emptyObject),
      };
      if (c.allowOob) o['allow-oob'] = true;
      tree(c.name, 'command', o, c.features);
    } else {
      const ev = e as REvent;
      tree(ev.name, 'event', { 'arg-type': use(ev.data ?? schema.emptyObject) });
    }
  }
  // The list grows while it is walked, as in introspect.py's visit_end().
  for (let i = 0; i < used.length; i++) {
    const t = used[i]!;
    switch (t.kind) {
      case 'builtin':
        tree(t.name, 'builtin', { 'json-type': JSON_TYPES[t.name]! });
        break;
      case 'enum':
        tree(masked(t.name), 'enum', { members: t.values.map((v) => ({ name: v })), values: [...t.values] }, t.features);
        break;
      case 'array': {
        const element = use(t.element);
        tree(`[${element}]`, 'array', { 'element-type': element });
        break;
      }
      case 'struct':
        tree(masked(t.name), 'object', { members: t.members.map(member) }, t.features);
        break;
      case 'union': {
        const o: Entry = { members: t.members.map(member) };
        o['tag'] = t.discriminator;
        o['variants'] = t.variants.map((v) => ({ case: v.case, type: use(v.type) }));
        tree(masked(t.name), 'object', o, t.features);
        break;
      }
      case 'alternate':
        tree(masked(t.name), 'alternate', { members: t.branches.map((b) => ({ type: use(b) })) }, t.features);
        break;
    }
  }
  return trees;
}
