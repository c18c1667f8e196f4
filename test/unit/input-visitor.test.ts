/** Argument validation: QEMU's visiting order, texts and parameter names. */
import t from 'tap';
import { CompiledSchema } from '../../server/dispatch/compiled-schema.js';
import { InputVisitor } from '../../server/dispatch/input-visitor.js';
import { parseVersion } from '../../server/dispatch/version.js';
import { JsonStreamer } from '../../server/qmp/json/streamer.js';
import type { QDict } from '../../server/qmp/json/qobject.js';
import { QmpError } from '../../server/errors/qmp-error.js';
import type { Expr } from '../../schema/defs.js';

const exprs: Expr[] = [
  { enum: 'Cap', data: ['xbzrle', 'events'] },
  { struct: 'CapStatus', data: { capability: 'Cap', state: 'bool' } },
  { alternate: 'StrOrNull', data: { s: 'str', n: 'null' } },
  {
    command: 'probe',
    data: {
      policy: 'uint32', '*gpa': 'uint64', '*small': 'int8', '*caps': ['CapStatus'], '*tls': 'StrOrNull',
      '*ratio': 'number', '*list': ['uint8'],
    },
    monitors: ['guest'],
  },
];
const schema = new CompiledSchema(exprs, 'guest', parseVersion('9.2.0'));

function args(json: string): QDict {
  let v: QDict | undefined;
  new JsonStreamer((i) => (v = i.value as QDict)).feed(Buffer.from(json));
  return v!;
}

function visit(json: string, legacy = false): unknown {
  try {
    return new InputVisitor({ legacyEnumErrors: legacy }).visitArguments(schema.commands.get('probe')!.args, args(json));
  } catch (e) {
    if (e instanceof QmpError) return e.desc;
    throw e;
  }
}

t.test('QEMU argument error texts', async (t) => {
  const cases: [string, string][] = [
    ['{}', "Parameter 'policy' is missing"],
    ['{"policy":"1"}', "Parameter 'policy' expects uint64"],
    ['{"policy":4294967296}', "Parameter 'policy' expects uint32_t"],
    ['{"policy":-1}', "Parameter 'policy' expects uint32_t"],
    ['{"policy":1.0}', "Parameter 'policy' expects uint64"],
    ['{"policy":1,"small":128}', "Parameter 'small' expects int8_t"],
    ['{"policy":1,"small":"x"}', "Invalid parameter type for 'small', expected: integer"],
    ['{"policy":1,"caps":{}}', "Invalid parameter type for 'caps', expected: array"],
    ['{"policy":1,"caps":[1]}', "Invalid parameter type for 'caps[0]', expected: object"],
    ['{"policy":1,"caps":[{"capability":"events","state":true},{"capability":"events","state":1}]}', "Invalid parameter type for 'caps[1].state', expected: boolean"],
    ['{"policy":1,"caps":[{"capability":"nope","state":true}]}', "Parameter 'capability' does not accept value 'nope'"],
    ['{"policy":1,"caps":[{"state":true}]}', "Parameter 'caps[0].capability' is missing"],
    ['{"policy":1,"caps":[{"capability":"events","state":true,"x":1}]}', "Parameter 'caps[0].x' is unexpected"],
    ['{"policy":1,"tls":1}', "Invalid parameter type for 'tls', expected: StrOrNull"],
    ['{"policy":1,"ratio":"x"}', "Invalid parameter type for 'ratio', expected: number"],
    ['{"policy":1,"list":[1,256]}', "Parameter 'null' expects uint8_t"],
    ['{"policy":1,"bogus":1}', "Parameter 'bogus' is unexpected"],
    ['{"policy":"x","bogus":1}', "Parameter 'policy' expects uint64"],
  ];
  for (const [input, want] of cases) t.equal(visit(input), want, input);
  t.equal(visit('{"policy":1,"caps":[{"capability":"nope","state":true}]}', true), "Invalid parameter 'nope'", 'pre-6.2 enum text');
});

t.test('conversions', async (t) => {
  t.same(visit('{"policy":1,"gpa":-1,"tls":null,"ratio":2}'), { policy: 1, gpa: 18446744073709551615n, tls: null, ratio: 2 });
  t.same(visit('{"policy":4294967295,"gpa":4096}'), { policy: 4294967295, gpa: 4096 });
});
