/**
 * What sevd keeps in its own directories, checked at start-up, and their hand-over to
 * the configured user by a daemon started as root. Whoever runs as that user can plant
 * anything there between two starts, and a root start that followed a planted link
 * (`state/x -> /etc/shadow`, or a hard link to it) would give the target away. So an
 * entry sevd does not create itself stops start-up, named; the hand-over never follows a
 * link (each entry is opened with O_NOFOLLOW and changed through its descriptor), and a
 * state file that is not yet the user's must have no other hard link. The contents of
 * dumps/ and migration/ are the clients' and are never touched.
 */
import { closeSync, constants, fchownSync, fstatSync, lstatSync, openSync, readdirSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { STATE_FILE } from '../firmware/nv-state.js';
import { isTmpName } from '../util/state-file.js';
import { strerror } from '../util/strerror.js';
import { GUESTS_FILE } from './guest-store.js';
import { StartupError } from './dir-lock.js';

export interface OwnDirectories {
  stateDir: string;
  runDir: string;
  dumps: string[];
  migration: string[];
}

type Kind = 'file' | 'directory' | 'socket';

const guestsDir = (d: OwnDirectories) => join(d.runDir, 'guests');

/** The kind sevd gives `dir/name`, or undefined: sevd never creates it. */
function expectedKind(d: OwnDirectories, dir: string, name: string): Kind | undefined {
  const path = join(dir, name);
  if ([d.stateDir, d.runDir, guestsDir(d), ...d.dumps, ...d.migration].includes(path)) return 'directory';
  if (dir === d.stateDir) {
    if (name === STATE_FILE || name === GUESTS_FILE || isTmpName(name)) return 'file';
    // The default dumps/ and migration/ of an earlier run with other paths.
    if (name === 'dumps' || name === 'migration') return 'directory';
  }
  if (dir === d.runDir && (name === 'sevd.qmp' || name === 'launch.qmp')) return 'socket';
  if (dir === guestsDir(d) && /\.(qmp|qga)$/.test(name)) return 'socket';
  return undefined;
}

function typeName(st: Stats): string {
  if (st.isSymbolicLink()) return 'symbolic link';
  if (st.isDirectory()) return 'directory';
  if (st.isFile()) return st.nlink > 1 ? `file with ${st.nlink} hard links` : 'file';
  if (st.isSocket()) return 'socket';
  if (st.isFIFO()) return 'FIFO';
  return 'device';
}

const is = (st: Stats, kind: Kind) => (kind === 'file' ? st.isFile() : kind === 'directory' ? st.isDirectory() : st.isSocket());

function where(d: OwnDirectories, dir: string): string {
  if (dir === d.stateDir) return 'the state directory (sevd keeps platform.json, guests.json, dumps/ and migration/ there)';
  if (dir === d.runDir) return 'the run directory (sevd keeps sevd.qmp, launch.qmp and guests/ there)';
  return "the run directory's guests/ (sevd keeps the guests' .qmp and .qga sockets there)";
}

/** Stops start-up at the first entry of the state or run directory that sevd would not have made. */
export function checkOwnEntries(d: OwnDirectories): void {
  for (const dir of new Set([d.stateDir, d.runDir, guestsDir(d)])) {
    let names: string[];
    try {
      if (!lstatSync(dir).isDirectory()) continue; // guests/ as anything else is reported in the run directory
      names = readdirSync(dir);
    } catch {
      continue; // not made yet
    }
    for (const name of names.sort()) {
      const st = lstatSync(join(dir, name), { throwIfNoEntry: false });
      if (!st) continue;
      const kind = expectedKind(d, dir, name);
      if (kind === undefined || !is(st, kind)) {
        throw new StartupError(`sevd: unexpected ${typeName(st)} '${join(dir, name)}' in ${where(d, dir)}`);
      }
    }
  }
}

/**
 * Gives `path` to `who` through a descriptor opened with `flags`. A file (`file`) must be
 * a regular one, and unless it is the user's already, the one name of its inode.
 */
function handOne(path: string, who: { uid: number; gid: number }, flags: number, file: boolean): void {
  let fd: number;
  try {
    fd = openSync(path, flags);
  } catch (e) {
    if (file && (e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new StartupError(`sevd: cannot hand '${path}' to uid ${who.uid}: ${strerror(e)}`);
  }
  try {
    const st = fstatSync(fd);
    if (st.uid === who.uid && st.gid === who.gid) return;
    if (file && (!st.isFile() || (st.uid !== who.uid && st.nlink !== 1))) {
      throw new StartupError(`sevd: unexpected ${typeName(st)} '${path}' in the state directory: sevd hands over only files of its own`);
    }
    fchownSync(fd, who.uid, who.gid);
  } finally {
    closeSync(fd);
  }
}

/**
 * Hands sevd's directories and state files to `who`. The state and run directories are
 * opened as configured (the operator's names); everything in them without following links.
 */
export function handOver(d: OwnDirectories, made: string[], who: { uid: number; gid: number }): void {
  const { O_RDONLY, O_DIRECTORY, O_NOFOLLOW, O_NONBLOCK, O_NOCTTY } = constants;
  for (const p of new Set([d.stateDir, d.runDir])) handOne(p, who, O_RDONLY | O_DIRECTORY, false);
  for (const p of made) handOne(p, who, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, false);
  for (const name of [STATE_FILE, GUESTS_FILE]) handOne(join(d.stateDir, name), who, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY, true);
}
