/** query-qmp-schema generation: masking, order of first use, integer folding, self-description. */
import t from 'tap';
import { schema } from '../../schema/index.js';
import { CompiledSchema } from '../../server/dispatch/compiled-schema.js';
import { introspect } from '../../server/dispatch/introspect.js';
import { parseVersion } from '../../server/dispatch/version.js';

t.test('guest monitor schema', async (t) => {
  const entries = introspect(new CompiledSchema(schema, 'guest', parseVersion('9.2.0'))) as any[];
  const byName = new Map(entries.map((e) => [e.name, e]));
  t.same(entries[0], { 'arg-type': '0', 'ret-type': '1', name: 'qmp_capabilities', 'meta-type': 'command' }, 'first command, first masked types');
  t.same(byName.get('1'), { members: [], name: '1', 'meta-type': 'object' }, 'q_empty');
  const qs = byName.get('query-status');
  t.equal(byName.get(qs['ret-type']).members.find((m: any) => m.name === 'singlestep'), undefined, 'no singlestep from 9.0');
  // Every type referenced is defined; masked names are decimal strings in increasing order.
  const typeNames = entries.filter((e) => !['command', 'event'].includes(e['meta-type'])).map((e) => e.name);
  const masked = typeNames.filter((n) => /^\d+$/.test(n)).map(Number);
  t.same(masked, [...masked].sort((a, b) => a - b), 'masked numbers increase');
  t.ok(byName.has('int') && byName.get('int')['json-type'] === 'int', 'integers fold into builtin int');
  t.notOk(byName.has('uint32'), 'no uint32 builtin');
  const refs = new Set<string>();
  const walk = (v: unknown) => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        if (['type', 'arg-type', 'ret-type', 'element-type'].includes(k) && typeof x === 'string') refs.add(x);
        walk(x);
      }
    }
  };
  walk(entries);
  for (const r of refs) t.ok(byName.has(r), `type ${r} is defined`);
  const hmp = byName.get('human-monitor-command');
  const argType = byName.get(hmp['arg-type']);
  t.same(argType.members, [{ name: 'command-line', type: 'str' }, { name: 'cpu-index', type: 'int', default: null }]);
  t.equal(hmp['ret-type'], 'str');
  t.equal(qs['arg-type'], '1', 'commands without arguments take q_empty');
});

t.test('pre-9.0 StatusInfo has singlestep', async (t) => {
  const entries = introspect(new CompiledSchema(schema, 'guest', parseVersion('7.2.0'))) as any[];
  const byName = new Map(entries.map((e) => [e.name, e]));
  const status = byName.get(byName.get('query-status')['ret-type']);
  t.same(status.members.map((m: any) => m.name), ['running', 'singlestep', 'status']);
});
