/**
 * Handler argument types come from schema/ (issue 22, item 5): checked by the compiler,
 * so this file fails the build when the derivation stops matching the schema. The runtime
 * part only confirms the visitor delivers what the types say.
 */
import t from 'tap';
import type { CommandArgs } from '../../server/dispatch/schema-types.js';
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

t.test('the visitor delivers what the derived types say', (t) => {
  const cmd = compiledSchema(schema, 'control', parseVersion('9.2.0')).commands.get('query-guest-memory')!;
  const args = new InputVisitor().visitArguments(cmd.args, fromPlain({ name: 'g', gpa: 2n ** 60n }) as never) as CommandArgs<'query-guest-memory'>;
  t.equal(args.name, 'g');
  t.equal(typeof args.gpa, 'bigint', 'a uint64 past 2^53 is a bigint, as the type allows');
  t.end();
});
