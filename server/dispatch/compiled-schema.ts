/**
 * Compiles the schema expressions (schema/) once per monitor kind and QEMU version into
 * resolved types that the input visitor, the output shaper and introspection walk.
 */
import type { CommandExpr, EventExpr, Expr, Members, MemberSpec, Monitor, TypeRef } from '../../schema/defs.js';
import { BUILTINS } from '../../schema/defs.js';
import { inRange, type Version } from './version.js';
import type { ReturnedType } from './schema-types.js';

export type IntKind = 'int' | 'int8' | 'int16' | 'int32' | 'int64' | 'uint8' | 'uint16' | 'uint32' | 'uint64' | 'size';

export type RType =
  | { kind: 'builtin'; name: string }
  | { kind: 'enum'; name: string; values: string[]; features: readonly string[] }
  | { kind: 'struct'; name: string; members: RMember[]; features: readonly string[] }
  | {
      kind: 'union';
      name: string;
      members: RMember[];
      discriminator: string;
      variants: { case: string; type: Extract<RType, { kind: 'struct' }> }[];
      features: readonly string[];
    }
  | { kind: 'alternate'; name: string; branches: RType[]; features: readonly string[] }
  | { kind: 'array'; name: string; element: RType };

export type RStruct = Extract<RType, { kind: 'struct' }>;

export interface RMember {
  name: string;
  type: RType;
  optional: boolean;
  features: readonly string[];
  pattern?: string;
}

export interface RCommand {
  name: string;
  args: RStruct | Extract<RType, { kind: 'union' }>;
  /** True when the command has no arguments of its own (introspection uses q_empty). */
  noArgs: boolean;
  returns?: RType;
  allowOob: boolean;
  /** The schema's `readOnly`: changes nothing (what a read-only credential may run). */
  readOnly: boolean;
  features: readonly string[];
}

export interface REvent {
  name: string;
  data?: RStruct;
}

const EMPTY: RStruct = { kind: 'struct', name: 'q_empty', members: [], features: [] };

export class CompiledSchema {
  readonly types = new Map<string, RType>();
  readonly commands = new Map<string, RCommand>();
  readonly events = new Map<string, REvent>();
  /** Commands and events in definition order (introspection walks them first). */
  readonly entities: (RCommand | REvent)[] = [];
  readonly emptyObject = EMPTY;
  private readonly exprs = new Map<string, Expr>();

  constructor(all: readonly Expr[], readonly monitor: Monitor, readonly version: Version) {
    for (const e of all) {
      const name = exprName(e);
      if (!inRange(version, e.since, e.before)) continue;
      // A command may be defined once per monitor (guest-add: control and launch).
      if (('command' in e || 'event' in e) && !e.monitors.includes(monitor)) continue;
      if (this.exprs.has(name)) throw new Error(`schema: ${name} defined twice`);
      this.exprs.set(name, e);
    }
    for (const e of this.exprs.values()) {
      if ('command' in e && e.monitors.includes(monitor)) {
        const c = this.compileCommand(e);
        this.commands.set(c.name, c);
        this.entities.push(c);
      } else if ('event' in e && e.monitors.includes(monitor)) {
        const ev: REvent = { name: e.event, ...(e.data ? { data: this.implicitStruct(`q_obj_${e.event}-arg`, e.data) } : {}) };
        this.events.set(ev.name, ev);
        this.entities.push(ev);
      }
    }
  }

  private compileCommand(e: CommandExpr): RCommand {
    let args: RCommand['args'] = EMPTY;
    if (typeof e.data === 'string') {
      const t = this.resolve(e.data);
      if (t.kind !== 'struct' && t.kind !== 'union') throw new Error(`schema: ${e.command} data must be a struct`);
      args = t;
    } else if (e.data) {
      args = this.implicitStruct(`q_obj_${e.command}-arg`, e.data);
    }
    return {
      name: e.command,
      args,
      noArgs: e.data === undefined,
      ...(e.returns !== undefined ? { returns: this.resolveRef(e.returns) } : {}),
      allowOob: e['allow-oob'] === true,
      readOnly: e.readOnly === true,
      features: e.features ?? [],
    };
  }

  private implicitStruct(name: string, data: Members): RStruct {
    return { kind: 'struct', name, members: this.members(data), features: [] };
  }

  private members(data: Members): RMember[] {
    const out: RMember[] = [];
    for (const [rawName, spec] of Object.entries(data)) {
      const s: MemberSpec = typeof spec === 'string' || Array.isArray(spec) ? { type: spec as TypeRef } : (spec as MemberSpec);
      if (!inRange(this.version, s.since, s.before)) continue;
      const optional = rawName.startsWith('*');
      out.push({
        name: optional ? rawName.slice(1) : rawName,
        type: this.resolveRef(s.type),
        optional,
        features: s.features ?? [],
        ...(s.pattern ? { pattern: s.pattern } : {}),
      });
    }
    return out;
  }

  resolveRef(ref: TypeRef): RType {
    if (Array.isArray(ref)) {
      const element = this.resolveRef(ref[0]!);
      return { kind: 'array', name: `${element.name}List`, element };
    }
    return this.resolve(ref as string);
  }

  /**
   * The values this version's enum `name` has, typed as the schema declares them: the
   * compiled enum is made from the same literals, only filtered by version.
   */
  enumValues<N extends string>(name: N): readonly ReturnedType<N>[] {
    const t = this.resolve(name);
    if (t.kind !== 'enum') throw new Error(`schema: ${name} is not an enum`);
    return t.values as ReturnedType<N>[];
  }

  resolve(name: string): RType {
    const known = this.types.get(name);
    if (known) return known;
    if ((BUILTINS as readonly string[]).includes(name)) {
      const t: RType = { kind: 'builtin', name };
      this.types.set(name, t);
      return t;
    }
    const e = this.exprs.get(name);
    if (!e) throw new Error(`schema: unknown type ${name}`);
    const features = e.features ?? [];
    if ('enum' in e) {
      const values = e.data
        .filter((v) => typeof v === 'string' || inRange(this.version, v.since, v.before))
        .map((v) => (typeof v === 'string' ? v : v.name));
      const t: RType = { kind: 'enum', name, values, features };
      this.types.set(name, t);
      return t;
    }
    if ('struct' in e) {
      const t: RStruct = { kind: 'struct', name, members: [], features };
      this.types.set(name, t); // registered first: members may refer back
      if (e.base) {
        const base = this.resolve(e.base);
        if (base.kind !== 'struct') throw new Error(`schema: base of ${name} must be a struct`);
        t.members.push(...base.members);
      }
      t.members.push(...this.members(e.data));
      return t;
    }
    if ('union' in e) {
      const t: Extract<RType, { kind: 'union' }> = {
        kind: 'union', name, members: [], discriminator: e.discriminator, variants: [], features,
      };
      this.types.set(name, t);
      t.members.push(...this.members(e.base));
      for (const [tag, branch] of Object.entries(e.data)) {
        if (!this.exprs.has(branch)) continue; // branch not in this version
        const b = this.resolve(branch);
        if (b.kind !== 'struct') throw new Error(`schema: branch ${branch} of ${name} must be a struct`);
        t.variants.push({ case: tag, type: b });
      }
      return t;
    }
    if ('alternate' in e) {
      const t: RType = { kind: 'alternate', name, branches: [], features };
      this.types.set(name, t);
      for (const ref of Object.values(e.data)) t.branches.push(this.resolveRef(ref));
      return t;
    }
    throw new Error(`schema: ${name} is not a type`);
  }
}

function exprName(e: Expr): string {
  if ('enum' in e) return e.enum;
  if ('struct' in e) return e.struct;
  if ('union' in e) return e.union;
  if ('alternate' in e) return e.alternate;
  if ('command' in e) return `command:${e.command}`;
  return `event:${(e as EventExpr).event}`;
}

const cache = new Map<string, CompiledSchema>();

/** Schemas are compiled once per (monitor kind, version) and shared by every monitor. */
export function compiledSchema(all: readonly Expr[], monitor: Monitor, version: Version): CompiledSchema {
  const key = `${monitor}@${version.major}.${version.minor}.${version.micro}`;
  let s = cache.get(key);
  if (!s) {
    s = new CompiledSchema(all, monitor, version);
    cache.set(key, s);
  }
  return s;
}
