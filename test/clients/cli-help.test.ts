/**
 * Every program's command line, tried as a new user would: --help and -h list every option
 * the parser accepts (checked against the very definition the parser uses), every
 * sev-owner subcommand has its own help with an example, --version answers, and unknown
 * options or missing values are one line and exit 2. Logs are readable at a terminal.
 */
import t, { type Test } from 'tap';
import { spawnSync, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { optionNames, type CommandDef } from '../../cli/args.js';
import { PLATFORM_EXPORT_COMMAND, SEVD_COMMAND } from '../../server/config/config.js';
import { SHELL_COMMAND } from '../../clients/shell/command.js';
import { COMMANDS as OWNER_COMMANDS, TOP as OWNER_TOP } from '../../clients/owner/commands.js';

const PROGRAMS: Record<string, string> = {
  sevd: 'dist/server/main.js',
  'sevd-shell': 'dist/clients/shell/main.js',
  'sev-owner': 'dist/clients/owner/cli.js',
};
const run = (program: string, ...args: string[]) => spawnSync(process.execPath, [PROGRAMS[program]!, ...args], { encoding: 'utf8', timeout: 10000 });

function checkHelp(t: Test, program: string, words: string[], def: CommandDef) {
  for (const flag of ['--help', '-h']) {
    const r = run(program, ...words, flag);
    t.equal(r.status, 0, `${def.name} ${flag}: exit 0`);
    for (const name of optionNames(def)) t.ok(r.stdout.includes(name), `${def.name} ${flag} lists ${name}`);
    for (const o of def.options) {
      if (o.value) t.ok(r.stdout.includes(`--${o.name} ${o.value}`), `${def.name}: --${o.name} shows its argument ${o.value}`);
      t.ok(r.stdout.includes(o.help), `${def.name}: --${o.name} has its one-line meaning`);
    }
    t.match(r.stdout, /^usage: /, `${def.name}: a usage line`);
    if (def.example) t.ok(r.stdout.includes(`example:\n  ${def.example}`), `${def.name}: an example`);
  }
}


t.test('--help of every program and subcommand lists every option with its argument, meaning and an example', async (t) => {
  checkHelp(t, 'sevd', [], SEVD_COMMAND);
  checkHelp(t, 'sevd', ['platform', 'export'], PLATFORM_EXPORT_COMMAND);
  checkHelp(t, 'sevd-shell', [], SHELL_COMMAND);
  checkHelp(t, 'sev-owner', [], OWNER_TOP);
  const top = run('sev-owner');
  t.equal(top.status, 0, 'sev-owner alone prints its help');
  for (const [words, def] of Object.entries(OWNER_COMMANDS)) {
    t.ok(top.stdout.includes(words), `sev-owner --help names '${words}'`);
    checkHelp(t, 'sev-owner', words.split(' '), def);
  }
});

t.test('--version; unknown options and missing values: one line, exit 2', async (t) => {
  for (const p of Object.keys(PROGRAMS)) {
    const v = run(p, '--version');
    t.equal(v.status, 0);
    t.match(v.stdout, new RegExp(`^${p} \\d+\\.\\d+\\.\\d+\\n$`), `${p} --version`);
    const u = run(p, '--no-such-option');
    t.equal(u.status, 2, `${p}: unknown option exits 2`);
    t.match(u.stderr, /^[^\n]*unknown option '--no-such-option'[^\n]*\n$/, `${p}: one line naming it`);
  }
  const cases: [string, string[], RegExp][] = [
    ['sevd', ['--config'], /^sevd: option --config needs a value\n$/],
    ['sevd', ['--log-format', 'xml'], /^sevd: flag --log-format: expected json or pretty, got 'xml'\n$/],
    ['sevd', ['platform', 'export', '--bogus'], /^sevd platform export: unknown option '--bogus'/],
    ['sev-owner', ['session', '--pdh'], /^sev-owner session: option --pdh needs a value\n$/],
    ['sev-owner', ['session', '--nope', 'x'], /^sev-owner session: unknown option '--nope' \(see --help\)\n$/],
    ['sev-owner', ['frobnicate'], /^sev-owner: unknown command 'frobnicate'/],
    ['sevd-shell', ['-Z'], /^sevd-shell: unknown option '-Z'/],
  ];
  for (const [p, args, re] of cases) {
    const r = run(p, ...args);
    t.equal(r.status, 2, `${p} ${args.join(' ')}: exit 2`);
    t.match(r.stderr, re);
  }
});

t.test('logs: JSON when asked or not on a terminal, readable lines with --log-format pretty and at a terminal', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sevd-log-'));
  const cfg = join(dir, 'c.json');
  writeFileSync(cfg, JSON.stringify({ runDir: join(dir, 'run'), stateDir: join(dir, 'state'), websocket: false, guests: [] }));
  const once = (fmt?: string) => {
    const r = spawnSync(process.execPath, ['-e', `
      const { spawn } = require('node:child_process');
      const p = spawn(process.execPath, [${JSON.stringify(resolve(PROGRAMS['sevd']!))}, '--config', ${JSON.stringify(cfg)}${fmt ? `, '--log-format', '${fmt}'` : ''}], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      p.stdout.on('data', (d) => { out += d; if (out.includes('sevd ready')) p.kill('SIGTERM'); });
      p.on('exit', () => process.stdout.write(out));
    `], { encoding: 'utf8', timeout: 15000 });
    return r.stdout;
  };
  const json = once();
  t.match(json.split('\n')[0], /^\{"level":30,/, 'not a terminal: JSON lines');
  t.match(json, /"msg":"sevd ready"/);
  const pretty = once('pretty');
  t.match(pretty, /^\d\d:\d\d:\d\d\.\d{3} INFO  sevd ready control=\S+sevd\.qmp/m, '--log-format pretty: readable lines');
  t.notMatch(pretty, /"level"/);
  t.match(once('json'), /"msg":"sevd ready"/, '--log-format json');
  // At a real terminal (tmux), the default is readable.
  const session = `sevd-log-${process.pid}`;
  try {
    execFileSync('tmux', ['new-session', '-d', '-s', session, '-x', '200', '-y', '20', `${process.execPath} ${resolve(PROGRAMS['sevd']!)} --config ${cfg}`]);
  } catch {
    t.comment('tmux is not installed: the terminal default is not checked here');
    return;
  }
  let screen = '';
  for (let i = 0; i < 50 && !screen.includes('sevd ready'); i++) {
    await new Promise((r) => setTimeout(r, 100));
    screen = execFileSync('tmux', ['capture-pane', '-p', '-t', session], { encoding: 'utf8' });
  }
  execFileSync('tmux', ['kill-session', '-t', session]);
  t.match(screen, /INFO  sevd ready/, 'at a terminal: readable lines by default');
  t.notMatch(screen, /\{"level"/);
});
