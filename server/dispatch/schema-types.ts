/**
 * Each command's argument type, derived by the compiler from schema/ (as QEMU's
 * qapi-gen derives C types from its QAPI schema): a handler's parameters are typed where
 * the command is declared, and a change to the schema is a type error in its handler.
 * The argument types say what the input visitor (input-visitor.ts) delivers: integers
 * wider than 32 bits may arrive as bigint, optional members may be absent, and a member
 * that only some QEMU versions have is optional. The return types say what the output
 * shaper (output-shaper.ts) takes: plain objects, any integer as number or bigint, and a
 * member of some versions only may be left out (the shaper drops what a version lacks).
 */
import type { schemaLiterals } from '../../schema/index.js';
import type { Native } from './input-visitor.js';
import type { OutValue } from '../qmp/json/writer.js';

type Exprs = (typeof schemaLiterals)[number];

/** What the visitor makes of each built-in (integers are numbers when exact, else bigint). */
interface InBuiltins {
  str: string;
  int: number | bigint;
  int8: number;
  int16: number;
  int32: number;
  int64: number | bigint;
  uint8: number;
  uint16: number;
  uint32: number;
  uint64: number | bigint;
  size: number | bigint;
  number: number;
  bool: boolean;
  any: Native;
  null: null;
}

/** What the writer takes for each built-in: any integer as number or bigint. */
interface OutBuiltins extends Omit<InBuiltins, 'int8' | 'int16' | 'int32' | 'uint8' | 'uint16' | 'uint32' | 'any'> {
  int8: number | bigint;
  int16: number | bigint;
  int32: number | bigint;
  uint8: number | bigint;
  uint16: number | bigint;
  uint32: number | bigint;
  any: OutValue;
}

/** The built-ins of one direction: B is InBuiltins (arguments) or OutBuiltins (returns). */
type Builtins = InBuiltins | OutBuiltins;

/** A type reference: ['T'] is a list, a built-in or a named type. */
type TypeOf<R, B extends Builtins> = R extends readonly [infer E]
  ? TypeOf<E, B>[]
  : R extends keyof B
    ? B[R]
    : NamedType<R, B>;

type RefOf<M> = M extends { type: infer T } ? T : M;
/** Optional: '*name', or present in some QEMU versions only. */
type OptionalKey<M, K extends keyof M> = K extends `*${string}` ? K : M[K] extends { since: string } | { before: string } ? K : never;
type OptionalKeys<M> = { [K in keyof M]-?: OptionalKey<M, K> }[keyof M];
type Bare<K> = K extends `*${infer N}` ? N : K;
type MembersType<M, B extends Builtins> = { -readonly [K in Exclude<keyof M, OptionalKeys<M>> & string]: TypeOf<RefOf<M[K]>, B> } & {
  -readonly [K in OptionalKeys<M> & string as Bare<K>]?: TypeOf<RefOf<M[K]>, B>;
};

type EnumType<E> = E extends { data: readonly (infer V)[] } ? (V extends string ? V : V extends { name: infer S } ? S : never) : never;
type StructType<E, B extends Builtins> = E extends { data: infer M }
  ? MembersType<M, B> & (E extends { base: infer S extends string } ? NamedType<S, B> : unknown)
  : never;
type AlternateType<E, B extends Builtins> = E extends { data: infer D } ? TypeOf<D[keyof D], B> : never;
/** One object per branch: the discriminator names its branch (as QAPI's generated C union). */
type UnionType<E, B extends Builtins> = E extends { base: infer M; discriminator: infer T extends string; data: infer D }
  ? { [K in keyof D]: Omit<MembersType<M, B>, T> & { [P in T]: K } & NamedType<D[K], B> }[keyof D]
  : never;

/** A named type: every version of it that the schema defines. */
type NamedType<N, B extends Builtins> =
  | EnumType<Extract<Exprs, { enum: N }>>
  | StructType<Extract<Exprs, { struct: N }>, B>
  | AlternateType<Extract<Exprs, { alternate: N }>, B>
  | UnionType<Extract<Exprs, { union: N }>, B>;

type CommandExprs = Extract<Exprs, { command: string }>;
export type CommandName = CommandExprs['command'];

type ArgsOf<E> = E extends { data: infer D } ? (D extends string ? NamedType<D, InBuiltins> : MembersType<D, InBuiltins>) : Record<string, never>;
/** Without `returns` a handler returns nothing and the dispatcher answers {} (QEMU's marshaller does the same). */
type ReturnsOf<E> = E extends { returns: infer R } ? TypeOf<R, OutBuiltins> : void | undefined;

/** The arguments of command `N` as its handler receives them (every version's shape). */
export type CommandArgs<N extends CommandName> = ArgsOf<Extract<CommandExprs, { command: N }>>;

/** What the handler of command `N` returns for the output shaper (any version's shape). */
export type CommandReturns<N extends CommandName> = ReturnsOf<Extract<CommandExprs, { command: N }>>;

/** A named schema type in the form handlers return it (for helpers that build part of a return). */
export type ReturnedType<N extends string> = NamedType<N, OutBuiltins>;

/** A named schema type (struct, enum, union, alternate) as the visitor delivers it. */
export type SchemaType<N extends string> = NamedType<N, InBuiltins>;
