/**
 * Handler argument and return types come from schema/ (issue 22, item 5): checked by the compiler,
 * so this file fails the build when the derivation stops matching the schema. The runtime
 * part only confirms the visitor delivers what the types say.
 */
import t from 'tap';
import type { CommandArgs, CommandReturns } from '../../server/dispatch/schema-types.js';
import type { Handler } from '../../server/dispatch/dispatcher.js';
import { InputVisitor } from '../../server/dispatch/input-visitor.js';
import { compiledSchema } from '../../server/dispatch/compiled-schema.js';
import { schema } from '../../schema/index.js';
import { fromPlain } from '../../server/qmp/json/qobject.js';
import { parseVersion } from '../../server/dispatch/version.js';

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
const assert = <T extends true>(_: T) => _;

// A required str, an optional uint64 (a bigint past 2^53), a boxed struct, an enum list.
assert<Equal<CommandArgs<'guest-del'>['name'], string>>(true);
assert<Equal<CommandArgs<'query-guest-memory'>['gpa'], number | bigint | undefined>>(true);
assert<Equal<CommandArgs<'sev-snp-set-tcb'>['bootloader'], number>>(true);
assert<Equal<CommandArgs<'qmp_capabilities'>['enable'], 'oob'[] | undefined>>(true);
// @ts-expect-error: guest-del has no member 'gpa'
assert<Equal<CommandArgs<'guest-del'>['gpa'], unknown>>(true);

// Returns: the plain-object form the output shaper takes (any integer as number or bigint).
assert<Equal<CommandReturns<'query-version'>['qemu']['micro'], number | bigint>>(true);
assert<Equal<CommandReturns<'query-version'>['package'], string>>(true);
// query-sev: the pre-9.1 struct or the 9.1 union, one object per branch named by 'sev-type'.
type SevInfo = CommandReturns<'query-sev'>;
assert<Equal<Extract<SevInfo, { 'sev-type': 'sev-snp' }>['snp-policy'], number | bigint>>(true);
assert<Equal<Extract<SevInfo, { 'sev-type': 'sev' }>['handle'], number | bigint>>(true);
assert<Equal<Exclude<SevInfo, { 'sev-type': string }>['policy'], number | bigint>>(true);
// @ts-expect-error: the sev branch has no 'snp-policy'
assert<Equal<Extract<SevInfo, { 'sev-type': 'sev' }>['snp-policy'], unknown>>(true);
// A list, and a command without 'returns': its handler returns nothing, the dispatcher answers {}.
assert<Equal<CommandReturns<'query-guests'>[number]['sev-state'], 'uninit' | 'launch-update' | 'launch-secret' | 'running' | 'send-update' | 'receive-update' | null>>(true);
assert<Equal<CommandReturns<'guest-add'>, void | undefined>>(true);
// The SEV migration parameters: StrOrNull in, str out.
assert<Equal<CommandArgs<'migrate-set-parameters'>['sev-pdh'], string | null | undefined>>(true);
assert<Equal<CommandReturns<'query-migrate-parameters'>['sev-pdh'], string | undefined>>(true);

// Handlers are checked against them, synchronous or not.
export const goodVersion: Handler<unknown, 'query-version'> = () => ({ qemu: { major: 9, minor: 2, micro: 0n }, package: '' });
export const goodAdd: Handler<unknown, 'guest-add'> = async () => {};
// @ts-expect-error: query-version's 'qemu' is a VersionTriple, not a string
export const badVersion: Handler<unknown, 'query-version'> = () => ({ qemu: '9.2.0', package: '' });
// @ts-expect-error: a 'sev-snp' branch needs 'snp-policy', not 'policy'
export const badSev: Handler<unknown, 'query-sev'> = async () => ({ enabled: true, 'api-major': 1, 'api-minor': 55, 'build-id': 0, state: 'running', 'sev-type': 'sev-snp', policy: 0 });
// @ts-expect-error: guest-add returns nothing (its reply is {})
export const badAdd: Handler<unknown, 'guest-add'> = () => ({ name: 'g' });

t.test('the visitor delivers what the derived types say', (t) => {
  const cmd = compiledSchema(schema, 'control', parseVersion('9.2.0')).commands.get('query-guest-memory')!;
  const args = new InputVisitor().visitArguments(cmd.args, fromPlain({ name: 'g', gpa: 2n ** 60n }) as never) as CommandArgs<'query-guest-memory'>;
  t.equal(args.name, 'g');
  t.equal(typeof args.gpa, 'bigint', 'a uint64 past 2^53 is a bigint, as the type allows');
  t.end();
});
