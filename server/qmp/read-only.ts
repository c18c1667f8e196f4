/**
 * What a read-only credential may run (docs/interface.md §14): the commands the schema marks
 * `readOnly` (they change nothing; schema/defs.ts) and HMP `info …`. Everything else
 * changes something (run state, memory, files, keys) and is refused before it is
 * dispatched. The classification is by effect, never by name: an unmarked command is
 * refused (fail closed). The guest agent is closed to read-only credentials at the
 * transport, whatever its commands' marks.
 */
import type { QDict } from './json/qobject.js';
import type { RCommand } from '../dispatch/compiled-schema.js';

export function readOnlyAllows(cmd: Pick<RCommand, 'name' | 'readOnly'>, args: QDict): boolean {
  if (cmd.readOnly) return true;
  if (cmd.name === 'human-monitor-command') {
    const line = args.get('command-line');
    return typeof line === 'string' && /^\s*info(\s|$)/.test(line);
  }
  return false;
}
