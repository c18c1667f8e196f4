/**
 * The read-only classification (schema `readOnly`, server/qmp/read-only.ts): which commands
 * a read-only credential may run is decided by each command's declared effect, not by its
 * name. The list is spelled out here so that marking a command read-only shows in review.
 */
import t from 'tap';
import { schema, type CommandExpr, type Members } from '../../schema/index.js';
import { CompiledSchema } from '../../server/dispatch/compiled-schema.js';
import { parseVersion } from '../../server/dispatch/version.js';
import { readOnlyAllows } from '../../server/qmp/read-only.js';

/** Every command that changes nothing, by monitor. Adding one here is a security decision. */
const READ_ONLY = {
  both: ['qmp_capabilities', 'query-version', 'query-commands', 'query-qmp-schema', 'query-sev-capabilities'],
  control: ['query-guests', 'query-guest-memory', 'query-asids', 'query-faults', 'sev-platform-status', 'sev-snp-platform-status', 'sev-export-certs', 'sev-pek-csr'],
  guest: [
    'query-status', 'query-name', 'query-uuid', 'query-kvm', 'query-cpus-fast', 'query-migrate', 'query-migrate-capabilities',
    'query-migrate-parameters', 'query-sev', 'query-sev-launch-measure', 'query-sev-attestation-report',
    // libvirt's machine view (docs/interface.md §15): reads of the machine, nothing else.
    'query-chardev', 'query-hotpluggable-cpus', 'qom-list', 'qom-get', 'query-iothreads', 'query-balloon',
    'query-named-block-nodes', 'query-block',
  ],
  // The agent is closed to read-only credentials at the transport; its marks record the effect only.
  agent: ['guest-ping', 'guest-info', 'guest-sev-features', 'guest-memory-read', 'guest-get-secrets'],
};

const commands = schema.filter((e): e is CommandExpr => 'command' in e);

t.test('the read-only commands are exactly the reviewed list', async (t) => {
  const marked = [...new Set(commands.filter((c) => c.readOnly).map((c) => c.command))].sort();
  t.same(marked, Object.values(READ_ONLY).flat().sort());
});

t.test('every definition of a command agrees (commands defined per QEMU version)', async (t) => {
  for (const name of new Set(commands.map((c) => c.command))) {
    const marks = new Set(commands.filter((c) => c.command === name).map((c) => c.readOnly === true));
    t.equal(marks.size, 1, name);
  }
});

t.test('plausibly read-only: every query-* is marked; no marked command names a file, a URI or writes data', async (t) => {
  for (const c of commands.filter((c) => c.command.startsWith('query-'))) t.ok(c.readOnly, `${c.command} is marked`);
  const resolveMembers = (d: CommandExpr['data']): Members => {
    if (typeof d !== 'string') return d ?? {};
    const s = schema.find((e) => ('struct' in e && e.struct === d) || ('union' in e && e.union === d)) as { data?: Members; base?: Members } | undefined;
    return { ...(s?.base ?? {}), ...(s && 'struct' in s ? s.data : {}) };
  };
  for (const c of commands.filter((c) => c.readOnly)) {
    const names = Object.keys(resolveMembers(c.data)).map((n) => n.replace(/^\*/, ''));
    // qom-list/qom-get's `path` names a QOM object inside the machine, never a file.
    const qomPath = (n: string) => n === 'path' && c.command.startsWith('qom-');
    t.same(names.filter((n) => /file|uri|path|secret|data|val/.test(n) && !qomPath(n)), [], `${c.command} takes no file, URI or payload`);
    t.notMatch(c.command, /^(guest-(add|del)|sev-.*-(gen|import|reset|commit|set-.*)|inject|clear|migrate$|stop|cont|quit|system_)/, `${c.command}: not a state-changing verb`);
  }
});

t.test('the compiled command carries the mark; the check uses it, not the name', async (t) => {
  for (const monitor of ['control', 'guest', 'agent'] as const) {
    const compiled = new CompiledSchema(schema, monitor, parseVersion('9.2.0'));
    const expected = new Set([...(monitor === 'agent' ? [] : READ_ONLY.both), ...READ_ONLY[monitor]]);
    for (const [name, cmd] of compiled.commands) t.equal(cmd.readOnly, expected.has(name), `${monitor}: ${name}`);
  }
  const args = (o: Record<string, string>) => new Map(Object.entries(o));
  t.ok(readOnlyAllows({ name: 'sev-platform-status', readOnly: true }, args({})), 'a marked command without query- in its name');
  t.notOk(readOnlyAllows({ name: 'query-something-new', readOnly: false }, args({})), 'an unmarked query-* is refused (fail closed)');
  t.ok(readOnlyAllows({ name: 'human-monitor-command', readOnly: false }, args({ 'command-line': ' info status' })), 'HMP info');
  t.notOk(readOnlyAllows({ name: 'human-monitor-command', readOnly: false }, args({ 'command-line': 'xp /1x 0' })), 'HMP xp');
  t.notOk(readOnlyAllows({ name: 'human-monitor-command', readOnly: false }, args({ 'command-line': 'information' })), 'HMP info… as a prefix only');
});
