/** Resolves a group name (from /etc/group) or number to a gid. */
import { readFileSync } from 'node:fs';

export function resolveGid(group: string | number | null): number | undefined {
  if (group === null) return undefined;
  if (typeof group === 'number') return group;
  const line = readFileSync('/etc/group', 'utf8').split('\n').find((l) => l.split(':')[0] === group);
  const gid = line ? Number(line.split(':')[2]) : NaN;
  if (!Number.isInteger(gid)) throw new Error(`unknown group '${group}'`);
  return gid;
}
