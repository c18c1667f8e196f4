/**
 * Command lines of sevd's programs: one definition per command gives both the parser
 * (node's util.parseArgs, strict) and the --help text, so the two cannot drift apart.
 * Errors are one line and exit code 2. Knows nothing of SEV; any program may use it.
 */
import { parseArgs } from 'node:util';

export interface OptionDef {
  name: string;
  short?: string;
  /** The value's placeholder (FILE, N, …); absent for a switch. */
  value?: string;
  help: string;
  /** May be given more than once. */
  multiple?: boolean;
}

export interface CommandDef {
  /** e.g. "sev-owner session" */
  name: string;
  summary: string;
  /** What follows the options, e.g. "SOCKET". */
  positionals?: string;
  options: readonly OptionDef[];
  example?: string;
}

export class UsageError extends Error {
  readonly exitCode = 2;
}

const HELP: OptionDef = { name: 'help', short: 'h', help: 'print this help and exit' };

export function helpText(def: CommandDef, more = ''): string {
  const opts = [...def.options, HELP];
  const left = (o: OptionDef) => `${o.short ? `-${o.short}, ` : '    '}--${o.name}${o.value ? ` ${o.value}` : ''}`;
  const width = Math.max(...opts.map((o) => left(o).length)) + 2;
  const lines = [
    `usage: ${def.name}${def.options.length ? ' [options]' : ''}${def.positionals ? ` ${def.positionals}` : ''}`,
    '',
    def.summary,
    '',
    'options:',
    ...opts.map((o) => `  ${left(o).padEnd(width)}${o.help}${o.multiple ? ' (repeatable)' : ''}`),
  ];
  if (more) lines.push('', more.trimEnd());
  if (def.example) lines.push('', 'example:', `  ${def.example}`);
  return lines.join('\n') + '\n';
}

export type Values = Record<string, string | boolean | string[] | undefined>;

/** Parses `argv` against `def`; `--help` comes back as values.help. */
export function parseCommand(def: CommandDef, argv: string[]): { values: Values; positionals: string[] } {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {};
  for (const o of [...def.options, HELP]) {
    options[o.name] = { type: o.value ? 'string' : 'boolean', ...(o.short ? { short: o.short } : {}), ...(o.multiple ? { multiple: true } : {}) };
  }
  try {
    const r = parseArgs({ args: argv, options, strict: true, allowPositionals: def.positionals !== undefined });
    return { values: r.values as Values, positionals: r.positionals };
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const opt = /'(-[^' ]+)/.exec(err.message)?.[1] ?? '';
    if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') throw new UsageError(`${def.name}: unknown option '${opt}' (see --help)`);
    if (err.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') throw new UsageError(`${def.name}: option ${opt} needs a value`);
    if (err.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') throw new UsageError(`${def.name}: unexpected argument ${/'([^']*)'/.exec(err.message)?.[1] ?? ''}`);
    throw new UsageError(`${def.name}: ${err.message}`);
  }
}

/** The option names a definition accepts (for tests: each must appear in the help). */
export function optionNames(def: CommandDef): string[] {
  return [...def.options, HELP].map((o) => `--${o.name}`);
}
