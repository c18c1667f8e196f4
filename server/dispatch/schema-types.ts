/**
 * Each command's argument type, derived by the compiler from schema/ (as QEMU's
 * qapi-gen derives C types from its QAPI schema): a handler's parameters are typed where
 * the command is declared, and a change to the schema is a type error in its handler.
 * The types say what the input visitor (input-visitor.ts) delivers: integers wider than
 * 32 bits may arrive as bigint, optional members may be absent, and a member that only
 * some QEMU versions have is optional.
 */
import type { schemaLiterals } from '../../schema/index.js';
import type { Native } from './input-visitor.js';

type Exprs = (typeof schemaLiterals)[number];

/** What the visitor makes of each built-in (integers are numbers when exact, else bigint). */
interface BuiltinTypes {
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

/** A type reference: ['T'] is a list, a built-in or a named type. */
type TypeOf<R> = R extends readonly [infer E] ? TypeOf<E>[] : R extends keyof BuiltinTypes ? BuiltinTypes[R] : NamedType<R>;

type RefOf<M> = M extends { type: infer T } ? T : M;
/** Optional: '*name', or present in some QEMU versions only. */
type OptionalKey<M, K extends keyof M> = K extends `*${string}` ? K : M[K] extends { since: string } | { before: string } ? K : never;
type OptionalKeys<M> = { [K in keyof M]-?: OptionalKey<M, K> }[keyof M];
type Bare<K> = K extends `*${infer N}` ? N : K;
type MembersType<M> = { -readonly [K in Exclude<keyof M, OptionalKeys<M>> & string]: TypeOf<RefOf<M[K]>> } & {
  -readonly [K in OptionalKeys<M> & string as Bare<K>]?: TypeOf<RefOf<M[K]>>;
};

type EnumType<E> = E extends { data: readonly (infer V)[] } ? (V extends string ? V : V extends { name: infer S } ? S : never) : never;
type StructType<E> = E extends { data: infer M } ? MembersType<M> & (E extends { base: infer B extends string } ? NamedType<B> : unknown) : never;
type AlternateType<E> = E extends { data: infer D } ? TypeOf<D[keyof D]> : never;
type UnionType<E> = E extends { base: infer B; data: infer D } ? MembersType<B> & NamedType<D[keyof D]> : never;

/** A named type: every version of it that the schema defines. */
type NamedType<N> =
  | EnumType<Extract<Exprs, { enum: N }>>
  | StructType<Extract<Exprs, { struct: N }>>
  | AlternateType<Extract<Exprs, { alternate: N }>>
  | UnionType<Extract<Exprs, { union: N }>>;

type CommandExprs = Extract<Exprs, { command: string }>;
export type CommandName = CommandExprs['command'];

type ArgsOf<E> = E extends { data: infer D } ? (D extends string ? NamedType<D> : MembersType<D>) : Record<string, never>;

/** The arguments of command `N` as its handler receives them (every version's shape). */
export type CommandArgs<N extends CommandName> = ArgsOf<Extract<CommandExprs, { command: N }>>;

/** A named schema type (struct, enum, union, alternate) as the visitor delivers it. */
export type SchemaType<N extends string> = NamedType<N>;
