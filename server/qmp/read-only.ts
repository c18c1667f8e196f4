/**
 * What a read-only credential may run (interface §14): negotiation, the query-* commands
 * and HMP `info …`. Everything else changes something (run state, memory, files, keys) and
 * is refused before it is dispatched.
 */
import type { QDict } from './json/qobject.js';

export function readOnlyAllows(command: string, args: QDict): boolean {
  if (command === 'qmp_capabilities' || command.startsWith('query-')) return true;
  if (command === 'human-monitor-command') {
    const line = args.get('command-line');
    return typeof line === 'string' && /^\s*info(\s|$)/.test(line);
  }
  return false;
}
