/**
 * The schema language: QAPI's own expression forms (struct, enum, union, alternate,
 * command, event) written as data, with '*name' for optional members and ['T'] for
 * lists. Everything sevd knows about a command (argument validation, return shaping,
 * query-commands, query-qmp-schema, config-file validation) is derived from these.
 */

export type TypeRef = string | readonly [string];

export interface MemberSpec {
  type: TypeRef;
  /** First QEMU version that has the member (inclusive). */
  since?: string;
  /** First QEMU version that no longer has it. */
  before?: string;
  features?: readonly string[];
  /** Extra constraint for config/guest-spec checks (not QAPI): a regular expression. */
  pattern?: string;
}

export type Members = Readonly<Record<string, TypeRef | MemberSpec>>;

interface Versioned {
  since?: string;
  before?: string;
  features?: readonly string[];
}

export interface EnumExpr extends Versioned {
  enum: string;
  data: readonly (string | { name: string; since?: string; before?: string })[];
}
export interface StructExpr extends Versioned {
  struct: string;
  base?: string;
  data: Members;
}
export interface UnionExpr extends Versioned {
  union: string;
  base: Members;
  discriminator: string;
  data: Readonly<Record<string, string>>;
}
export interface AlternateExpr extends Versioned {
  alternate: string;
  data: Readonly<Record<string, TypeRef>>;
}
/** `launch`: the launch socket (docs/interface.md §15). */
export type Monitor = 'control' | 'guest' | 'agent' | 'launch';
export interface CommandExpr extends Versioned {
  command: string;
  /** Inline members, or the name of a struct (boxed when `boxed` is true). */
  data?: Members | string;
  boxed?: boolean;
  returns?: TypeRef;
  'allow-oob'?: boolean;
  monitors: readonly Monitor[];
  /**
   * sevd's, not QAPI's: the command changes nothing (run state, guest memory, files, keys,
   * firmware, faults, migration), so a read-only credential may run it. Absent: it changes
   * state and is refused to read-only credentials (fail closed).
   */
  readOnly?: true;
}
export interface EventExpr extends Versioned {
  event: string;
  data?: Members;
  monitors: readonly Monitor[];
}

export type Expr = EnumExpr | StructExpr | UnionExpr | AlternateExpr | CommandExpr | EventExpr;

export const BUILTINS = [
  'str', 'int', 'int8', 'int16', 'int32', 'int64', 'uint8', 'uint16', 'uint32', 'uint64',
  'size', 'number', 'bool', 'any', 'null',
] as const;
export type Builtin = (typeof BUILTINS)[number];
