/**
 * Generates docs/qmp-reference.md from schema/, as QEMU's QMP reference is generated from
 * its QAPI: per monitor (control, guest, guest agent, launch socket) every command with its arguments,
 * return type and whether a read-only credential may run it, then the events. The schema
 * is the single source, so the reference cannot drift (test/unit/docs-stale.test.ts).
 * Run: `npm run docs`.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { schema, type CommandExpr, type EventExpr, type Expr, type Members, type MemberSpec, type Monitor, type TypeRef } from '../../schema/index.js';

export const QMP_REFERENCE = 'docs/qmp-reference.md';

const MONITORS: readonly [Monitor, string, string][] = [
  ['control', 'Control monitor', '`run/sevd.qmp`, WebSocket `/qmp` (docs/interface.md §5)'],
  ['guest', 'Guest monitor', '`run/guests/<name>.qmp`, WebSocket `/qmp/<name>` (docs/interface.md §7)'],
  ['agent', 'Guest agent', '`run/guests/<name>.qga`, WebSocket `/qga/<name>` (docs/interface.md §8)'],
  ['launch', 'Launch socket', '`run/launch.qmp` only, until its `guest-add` hands the connection over to that guest\'s monitor (docs/interface.md §15)'],
];

const typeName = (t: TypeRef) => (typeof t === 'string' ? t : `[${t[0]}]`);
const spec = (m: TypeRef | MemberSpec): MemberSpec => (typeof m === 'string' || Array.isArray(m) ? { type: m as TypeRef } : (m as MemberSpec));
const versions = (v: { since?: string; before?: string }) =>
  [v.since ? `since ${v.since}` : '', v.before ? `before ${v.before}` : ''].filter(Boolean).join(', ');
const cell = (s: string) => s.replace(/\|/g, '\\|');

/** The members a boxed command takes: its struct's (with the base), or a union's base and variants. */
function boxedMembers(name: string): { members: Members; note?: string } {
  const defs = schema.filter((e) => ('struct' in e && e.struct === name) || ('union' in e && e.union === name));
  const d = defs[defs.length - 1];
  if (d && 'struct' in d) {
    const base = d.base ? boxedMembers(d.base).members : {};
    return { members: { ...base, ...d.data } };
  }
  if (d && 'union' in d) {
    const variants = Object.entries(d.data).map(([k, v]) => `\`${k}\`: ${v}`).join(', ');
    return { members: d.base, note: `plus the members of the variant chosen by \`${d.discriminator}\` (${variants})` };
  }
  return { members: {} };
}

function memberTable(members: Members): string[] {
  const rows = Object.entries(members);
  if (rows.length === 0) return [];
  return [
    '| name | type | optional | versions |',
    '|---|---|---|---|',
    ...rows.map(([k, m]) => {
      const s = spec(m);
      const optional = k.startsWith('*');
      return `| \`${optional ? k.slice(1) : k}\` | ${cell(typeName(s.type))} | ${optional ? 'yes' : 'no'} | ${versions(s) || '–'} |`;
    }),
  ];
}

function command(c: CommandExpr): string[] {
  const out = [`#### \`${c.command}\``, ''];
  const facts = [
    `returns: ${c.returns ? `\`${typeName(c.returns)}\`` : 'nothing (`{}`)'}`,
    `read-only: ${c.readOnly ? 'yes (a read-only credential may run it)' : 'no (changes state; refused to read-only credentials)'}`,
  ];
  if (versions(c)) facts.push(versions(c));
  if (c['allow-oob']) facts.push('allows out-of-band execution');
  out.push(...facts.map((f) => `- ${f}`), '');
  if (typeof c.data === 'string') {
    const b = boxedMembers(c.data);
    out.push(`Arguments: the members of \`${c.data}\`${b.note ? `, ${b.note}` : ''}.`, '');
    if (memberTable(b.members).length) out.push(...memberTable(b.members), '');
  } else if (c.data && Object.keys(c.data).length) {
    out.push('Arguments:', '', ...memberTable(c.data), '');
  } else out.push('Arguments: none.', '');
  return out;
}

function event(e: EventExpr): string[] {
  const out = [`#### \`${e.event}\``, ''];
  if (versions(e)) out.push(`- ${versions(e)}`, '');
  if (e.data && Object.keys(e.data).length) out.push('Data:', '', ...memberTable(e.data), '');
  else out.push('Data: none.', '');
  return out;
}

/** The whole reference as Markdown (deterministic: schema order). */
export function renderQmpReference(exprs: readonly Expr[] = schema): string {
  const out = [
    '# QMP command reference',
    '',
    '<!-- Generated from schema/ by test/tools/qmp-doc.ts: do not edit; run `npm run docs`. -->',
    '',
    "Every command and event of sevd's monitors, from the same schema that validates",
    'arguments, shapes replies and answers `query-qmp-schema`. Types are QAPI types (`[T]` is a',
    'list of `T`); the struct, enum and union definitions are in `schema/` and in `query-qmp-schema`.',
    'Versions are QEMU versions: with `qemuVersion` set (docs/configuration.md) a member or command',
    "outside its range does not exist, as on that QEMU. \"read-only\" is sevd's: whether a read-only",
    'WebSocket token may run the command (docs/interface.md §14).',
    '',
  ];
  for (const [m, title, where] of MONITORS) {
    const commands = exprs.filter((e): e is CommandExpr => 'command' in e && e.monitors.includes(m));
    const events = exprs.filter((e): e is EventExpr => 'event' in e && e.monitors.includes(m));
    out.push(`## ${title}`, '', `Reached at ${where}.`, '', '### Commands', '');
    for (const c of commands) out.push(...command(c));
    out.push('### Events', '');
    if (events.length === 0) out.push('None.', '');
    for (const e of events) out.push(...event(e));
  }
  return `${out.join('\n').replace(/\n+$/, '')}\n`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(QMP_REFERENCE, renderQmpReference());
  console.log(`wrote ${QMP_REFERENCE}`);
}
