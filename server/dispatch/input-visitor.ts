/**
 * QAPI input visitor: checks command arguments against the compiled schema and converts
 * them to plain values, with QEMU's visiting order, error texts and parameter naming
 * (qapi/qobject-input-visitor.c: full dotted names for type errors, bare member names
 * for range and enum errors, "null" for list elements).
 */
import type { QDict, QObject } from '../qmp/json/qobject.js';
import { isQDict } from '../qmp/json/qobject.js';
import { ArgumentErrors as Errors } from '../errors/argument-errors.js';
import type { RMember, RType } from './compiled-schema.js';

/** Converted argument values: integers become numbers when exact, else bigint. */
export type Native = null | boolean | number | bigint | string | QObject | Native[] | { [k: string]: Native };

type Frame = { dict: QDict; name: string | null; left: Set<string> } | { list: true; name: string | null; index: number };

const I64_MIN = -(1n << 63n);
const I64_MAX = (1n << 63n) - 1n;
const U64_MOD = 1n << 64n;

const INT_RANGES: Record<string, [bigint, bigint, string]> = {
  int8: [-128n, 127n, 'int8_t'],
  int16: [-32768n, 32767n, 'int16_t'],
  int32: [-2147483648n, 2147483647n, 'int32_t'],
  uint8: [0n, 255n, 'uint8_t'],
  uint16: [0n, 65535n, 'uint16_t'],
  uint32: [0n, 4294967295n, 'uint32_t'],
};

function toNative(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

export interface VisitorOptions {
  /** QEMU < 6.2 words unknown enum values differently. */
  legacyEnumErrors?: boolean;
}

export class InputVisitor {
  private readonly stack: Frame[] = [];

  constructor(private readonly opts: VisitorOptions = {}) {}

  /** Visits the top-level arguments object of a command. */
  visitArguments(type: RType, args: QDict): { [k: string]: Native } {
    return this.visit(type, null, args) as { [k: string]: Native };
  }

  /** full_name(): the dotted path of `name` inside the containers being visited. */
  private fullName(name: string | null): string {
    let err = '';
    for (let i = this.stack.length - 1; i >= 0; i--) {
      const so = this.stack[i]!;
      if ('dict' in so) err = '.' + (name ?? '<anonymous>') + err;
      else err = `[${so.index}]` + err;
      name = so.name;
    }
    if (name) return name + err;
    if (err.startsWith('.')) return err.slice(1);
    return err === '' ? '<anonymous>' : err;
  }

  private visit(type: RType, name: string | null, obj: QObject): Native {
    switch (type.kind) {
      case 'builtin': return this.visitBuiltin(type.name, name, obj);
      case 'enum': {
        if (typeof obj !== 'string') throw Errors.invalidType(this.fullName(name), 'string');
        if (!type.values.includes(obj)) {
          throw this.opts.legacyEnumErrors ? Errors.enumValueLegacy(obj) : Errors.enumValue(name ?? 'null', obj);
        }
        return obj;
      }
      case 'struct':
      case 'union':
        return this.visitStruct(type, name, obj);
      case 'array': {
        if (!Array.isArray(obj)) throw Errors.invalidType(this.fullName(name), 'array');
        const frame = { list: true as const, name, index: -1 };
        this.stack.push(frame);
        const out: Native[] = [];
        for (const el of obj) {
          frame.index++;
          out.push(this.visit(type.element, null, el));
        }
        this.stack.pop();
        return out;
      }
      case 'alternate': {
        const branch = type.branches.find((b) => matchesQType(b, obj));
        if (!branch) throw Errors.invalidType(name ?? 'null', type.name);
        return this.visit(branch, name, obj);
      }
    }
  }

  private visitStruct(type: Extract<RType, { kind: 'struct' | 'union' }>, name: string | null, obj: QObject): Native {
    if (!isQDict(obj)) throw Errors.invalidType(this.fullName(name), 'object');
    const frame = { dict: obj, name, left: new Set(obj.keys()) };
    this.stack.push(frame);
    const out: { [k: string]: Native } = {};
    this.visitMembers(type.members, frame, out);
    if (type.kind === 'union') {
      const tag = out[type.discriminator];
      const variant = type.variants.find((v) => v.case === tag);
      if (variant) this.visitMembers(variant.type.members, frame, out);
    }
    const leftover = frame.left.values().next();
    if (!leftover.done) throw Errors.unexpected(this.fullName(leftover.value));
    this.stack.pop();
    return out;
  }

  private visitMembers(members: RMember[], frame: { dict: QDict; left: Set<string> }, out: { [k: string]: Native }): void {
    for (const m of members) {
      if (!frame.dict.has(m.name)) {
        if (m.optional) continue;
        throw Errors.missing(this.fullName(m.name));
      }
      frame.left.delete(m.name);
      out[m.name] = this.visit(m.type, m.name, frame.dict.get(m.name)!);
    }
  }

  private visitBuiltin(kind: string, name: string | null, obj: QObject): Native {
    switch (kind) {
      case 'str':
        if (typeof obj !== 'string') throw Errors.invalidType(this.fullName(name), 'string');
        return obj;
      case 'bool':
        if (typeof obj !== 'boolean') throw Errors.invalidType(this.fullName(name), 'boolean');
        return obj;
      case 'null':
        if (obj !== null) throw Errors.invalidType(this.fullName(name), 'null');
        return null;
      case 'any':
        return obj;
      case 'number':
        if (typeof obj === 'bigint') return Number(obj);
        if (typeof obj !== 'number') throw Errors.invalidType(this.fullName(name), 'number');
        return obj;
      case 'int':
      case 'int64':
        return toNative(this.int64(name, obj));
      case 'int8':
      case 'int16':
      case 'int32': {
        const v = this.int64(name, obj);
        const [min, max, cname] = INT_RANGES[kind]!;
        if (v < min || v > max) throw Errors.invalidValue(name ?? 'null', cname);
        return Number(v);
      }
      case 'uint64':
      case 'size':
        return toNative(this.uint64(name, obj));
      case 'uint8':
      case 'uint16':
      case 'uint32': {
        const v = this.uint64(name, obj);
        const [, max, cname] = INT_RANGES[kind]!;
        if (v > max) throw Errors.invalidValue(name ?? 'null', cname);
        return Number(v);
      }
      default:
        throw new Error(`visitor: unknown builtin ${kind}`);
    }
  }

  private int64(name: string | null, obj: QObject): bigint {
    if (typeof obj !== 'bigint' || obj < I64_MIN || obj > I64_MAX) throw Errors.invalidType(this.fullName(name), 'integer');
    return obj;
  }

  /** uint64 accepts negative int64 values for compatibility, wrapping modulo 2^64. */
  private uint64(name: string | null, obj: QObject): bigint {
    if (typeof obj !== 'bigint') throw Errors.invalidValue(this.fullName(name), 'uint64');
    return obj < 0n ? obj + U64_MOD : obj;
  }
}

/** The QType an alternate branch accepts (qobject_input_start_alternate). */
function matchesQType(t: RType, obj: QObject): boolean {
  switch (t.kind) {
    case 'builtin':
      switch (t.name) {
        case 'str': return typeof obj === 'string';
        case 'bool': return typeof obj === 'boolean';
        case 'null': return obj === null;
        case 'any': return true;
        default: return typeof obj === 'bigint' || typeof obj === 'number';
      }
    case 'enum': return typeof obj === 'string';
    case 'array': return Array.isArray(obj);
    default: return isQDict(obj);
  }
}

