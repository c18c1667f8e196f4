/**
 * All-or-nothing replacement of a state file. The new text goes to a temporary file that
 * is written, fsynced and closed, then renamed over the old one, then the directory is
 * fsynced. A failure before the rename removes the temporary file; a failure after it
 * (the directory fsync) puts the old content back. Either way the caller gets a
 * PersistError and the file on disk is what it was: a command that fails changes nothing.
 */
import { basename, dirname, join } from 'node:path';
import { stateIo } from './state-io.js';
import { strerror } from './strerror.js';

export class PersistError extends Error {
  readonly code: string | undefined;
  constructor(readonly path: string, readonly reason: unknown) {
    super(`Could not write '${path}': ${strerror(reason)}`);
    this.code = (reason as NodeJS.ErrnoException).code;
  }
}

/** The temporary file of a write in progress; start-up removes any a crash left behind. */
export const tmpName = (path: string) => join(dirname(path), `.${basename(path)}.tmp-${process.pid}`);
export const isTmpName = (name: string) => /^\..+\.tmp-\d+$/.test(name);

function writeTmp(path: string, text: string, mode: number): string {
  const tmp = tmpName(path);
  let fd: number;
  try {
    fd = stateIo.create(tmp, mode);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    stateIo.unlink(tmp); // left by a crash of a process that had our pid
    fd = stateIo.create(tmp, mode);
  }
  try {
    try {
      stateIo.write(fd, tmp, text);
      stateIo.fsync(fd, tmp);
    } finally {
      stateIo.close(fd, tmp);
    }
  } catch (e) {
    removeQuietly(tmp);
    throw e;
  }
  return tmp;
}

function removeQuietly(path: string): void {
  try {
    stateIo.unlink(path);
  } catch {
    // Nothing more to do: start-up sweeps temporary files.
  }
}

/** Replaces `path` with `text`, or throws PersistError leaving the file as it was. */
export function replaceStateFile(path: string, text: string, mode = 0o600): void {
  const dir = dirname(path);
  let old: string | undefined;
  try {
    stateIo.mkdir(dir);
    old = stateIo.read(path);
    const tmp = writeTmp(path, text, mode);
    try {
      stateIo.rename(tmp, path);
    } catch (e) {
      removeQuietly(tmp);
      throw e;
    }
  } catch (e) {
    throw new PersistError(path, e);
  }
  try {
    stateIo.fsyncDir(dir);
  } catch (e) {
    // The new name may not be durable: undo, so that memory and disk keep agreeing.
    try {
      if (old === undefined) stateIo.unlink(path);
      else stateIo.rename(writeTmp(path, old, mode), path);
      stateIo.fsyncDir(dir);
    } catch {
      // A second failure in a row: what is on disk is one of the two versions, both valid.
    }
    throw new PersistError(path, e);
  }
}

/**
 * Start-up check that the state directory takes writes (a read-only or full filesystem is
 * a clear error before anything runs, not a failure of the first command).
 */
export function probeWritable(dir: string): void {
  const probe = join(dir, `.sevd-probe.tmp-${process.pid}`);
  try {
    replaceStateFile(probe, 'probe\n');
  } catch (e) {
    throw new PersistError(dir, (e as PersistError).reason);
  }
  removeQuietly(probe);
}
