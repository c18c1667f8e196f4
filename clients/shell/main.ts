#!/usr/bin/env node
/**
 * sevd-shell: an interactive QMP shell compatible with qmp-shell's syntax, for sevd and QEMU.
 *   sevd-shell [-p] [-H] SOCKET|tcp:HOST:PORT|ws://…|ws+binary://…   (--help: clients/shell/command.ts)
 * -p pretty-prints replies, -H sends every line as an HMP command. History, tab completion
 * from query-commands, and events shown as they arrive.
 */
import readline from 'node:readline';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { appendFileSync, readFileSync } from 'node:fs';
import { QmpClient, QMPError } from '../qmp/client.js';
import { parseLine } from './parse.js';
import { helpText, parseCommand, UsageError } from '../../cli/args.js';
import { SHELL_COMMAND, SHELL_VERSION } from './command.js';

const HISTORY = process.env['SEVD_SHELL_HISTORY'] ?? join(homedir(), '.sevd_shell_history');

function usageError(message: string): never {
  process.stderr.write(message + '\n');
  process.exit(2);
}

async function main(): Promise<void> {
  let parsed;
  try {
    parsed = parseCommand(SHELL_COMMAND, process.argv.slice(2));
  } catch (e) {
    if (e instanceof UsageError) usageError(e.message);
    throw e;
  }
  const { values, positionals } = parsed;
  if (values['help']) return void process.stdout.write(helpText(SHELL_COMMAND));
  if (values['version']) return void process.stdout.write(`sevd-shell ${SHELL_VERSION}\n`);
  const pretty = values['pretty'] === true;
  const hmp = values['hmp'] === true;
  const target = positionals[0];
  if (!target || positionals.length > 1) usageError(`sevd-shell: expected one target (${SHELL_COMMAND.positionals}); see --help`);
  let client: QmpClient;
  try {
    client = await QmpClient.connect(target, { timeoutMs: 60000 });
  } catch (e) {
    process.stderr.write(`sevd-shell: cannot connect to ${target}: ${(e as Error).message}\n`);
    process.exit(1);
  }
  const v = client.greeting.QMP.version.qemu;
  const commands = hmp ? [] : (await client.execute<{ name: string }[]>('query-commands')).map((c) => c.name).sort();
  process.stdout.write(`Welcome to the QMP low-level shell!\nConnected to QEMU ${v.major}.${v.minor}.${v.micro}\n\n`);

  let history: string[] = [];
  try {
    history = readFileSync(HISTORY, 'utf8').split('\n').filter(Boolean).reverse().slice(0, 1000);
  } catch {
    // no history yet
  }
  const rl = readline.createInterface({
    input: process.stdin,
    output: process.stdout,
    prompt: hmp ? '(QEMU) ' : '(QEMU) ',
    history,
    historySize: 1000,
    completer: (line: string): [string[], string] => {
      if (line.includes(' ')) return [[], line];
      const hits = commands.filter((c) => c.startsWith(line));
      return [hits.length ? hits : [], line];
    },
  });
  // Node 24's readline throws on prompt() once the input has ended (a script on stdin):
  // replies still pending then are printed without a prompt.
  let inputEnded = false;
  const prompt = (preserveCursor?: boolean) => {
    if (!inputEnded) rl.prompt(preserveCursor);
  };
  const show = (v: unknown) => (pretty ? JSON.stringify(v, null, 4) : JSON.stringify(v));
  const print = (text: string) => {
    // Print above the prompt and redraw what the user is typing.
    readline.clearLine(process.stdout, 0);
    readline.cursorTo(process.stdout, 0);
    process.stdout.write(text + '\n');
    prompt(true);
  };
  void (async () => {
    for await (const ev of client.events()) print(show(ev));
  })();
  // Lines run one after another; closing the input waits for the last reply.
  let work: Promise<void> = Promise.resolve();
  rl.on('line', (line) => {
    work = work.then(() => handle(line));
  });
  const handle = async (line: string): Promise<void> => {
    if (line.trim()) {
      try {
        appendFileSync(HISTORY, line + '\n');
      } catch {
        // history is best effort
      }
    }
    try {
      if (hmp) {
        if (line.trim()) process.stdout.write(await client.hmp(line));
      } else {
        const p = parseLine(line);
        if ('error' in p) process.stdout.write(`Error while parsing command line: ${p.error}\n`);
        else if ('execute' in p) {
          try {
            process.stdout.write(show({ return: await client.execute(p.execute, p.arguments) }) + '\n');
          } catch (e) {
            if (e instanceof QMPError) process.stdout.write(show({ error: { class: e.cls, desc: e.desc } }) + '\n');
            else throw e;
          }
        }
      }
    } catch (e) {
      process.stdout.write(`${(e as Error).message}\n`);
    }
    prompt();
  };
  rl.on('close', () => {
    inputEnded = true;
    void work.then(() => {
      client.close();
      process.stdout.write('\n');
      process.exit(0);
    });
  });
  rl.prompt();
}

void main();
