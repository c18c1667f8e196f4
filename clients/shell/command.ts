/** sevd-shell's command line: the one definition its parser and its --help use. */
import type { CommandDef } from '../../cli/args.js';

export const SHELL_VERSION = '0.1.0';

export const SHELL_COMMAND: CommandDef = {
  name: 'sevd-shell',
  positionals: 'SOCKET|tcp:HOST:PORT|ws://HOST:PORT/PATH|ws+binary://HOST:PORT/PATH',
  summary: "An interactive QMP shell with qmp-shell's syntax (command key=value …, or raw JSON), for sevd and QEMU:\nhistory, tab completion from query-commands, and events shown as they arrive.",
  options: [
    { name: 'pretty', short: 'p', help: 'pretty-print replies' },
    { name: 'hmp', short: 'H', help: 'send every line as an HMP command (human-monitor-command)' },
    { name: 'version', help: 'print the version and exit' },
  ],
  example: 'sevd-shell -p run/guests/demo.qmp',
};
