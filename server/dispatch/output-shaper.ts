/**
 * Puts a command's return value into schema member order (QEMU's output visitor inserts
 * members in schema order, which decides the wire order within a QDict bucket) and drops
 * absent optional members. A missing required member is a bug in sevd: it throws.
 */
import type { OutValue } from '../qmp/json/writer.js';
import type { RMember, RType } from './compiled-schema.js';

type Plain = { readonly [k: string]: OutValue | undefined };

export function shapeOutput(type: RType, value: OutValue | undefined, where = 'return'): OutValue {
  if (value === undefined) throw new Error(`sevd bug: ${where} is missing`);
  switch (type.kind) {
    case 'struct':
      return shapeMembers(type.members, value as Plain, where, {});
    case 'union': {
      const v = value as Plain;
      const out = shapeMembers(type.members, v, where, {});
      const variant = type.variants.find((x) => x.case === v[type.discriminator]);
      return variant ? shapeMembers(variant.type.members, v, where, out) : out;
    }
    case 'array':
      return (value as readonly OutValue[]).map((el, i) => shapeOutput(type.element, el, `${where}[${i}]`));
    case 'alternate': {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
      const struct = type.branches.find((b) => b.kind === 'struct' || b.kind === 'union');
      return struct ? shapeOutput(struct, value, where) : value;
    }
    default:
      return value;
  }
}

function shapeMembers(members: RMember[], v: Plain, where: string, out: Record<string, OutValue>): Record<string, OutValue> {
  for (const m of members) {
    const x = v[m.name];
    if (x === undefined) {
      if (!m.optional) throw new Error(`sevd bug: ${where}.${m.name} is missing`);
      continue;
    }
    out[m.name] = shapeOutput(m.type, x, `${where}.${m.name}`);
  }
  return out;
}
