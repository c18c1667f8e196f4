/**
 * The filesystem calls that persistent state makes, behind one seam so that a test can
 * fail any one of them (SQLite's I/O-error harness: fail call 1, then call 2, …). Nothing
 * but the state code and its tests uses this; the daemon never injects anything itself.
 */
import {
  closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeSync, constants,
} from 'node:fs';

export type IoOp = 'read' | 'open' | 'write' | 'fsync' | 'close' | 'rename' | 'unlink' | 'dirfsync' | 'mkdir';

/** Returns an error to raise instead of performing the call, or undefined to let it run. */
export type IoFaultInjector = (op: IoOp, path: string) => NodeJS.ErrnoException | undefined;

let injector: IoFaultInjector | null = null;

/** Tests only: every state I/O call asks `f` first. `null` removes it. */
export function injectIoFaults(f: IoFaultInjector | null): void {
  injector = f;
}

/** An error shaped like the one node raises for a failed system call. */
export function ioError(code: 'ENOSPC' | 'EIO' | 'EROFS' | 'EACCES', op: IoOp, path: string): NodeJS.ErrnoException {
  const errno = { ENOSPC: 28, EIO: 5, EROFS: 30, EACCES: 13 }[code];
  const e = new Error(`${code}: injected failure, ${op} '${path}'`) as NodeJS.ErrnoException;
  e.code = code;
  e.errno = -errno;
  e.syscall = op;
  e.path = path;
  return e;
}

function call<T>(op: IoOp, path: string, fn: () => T): T {
  const e = injector?.(op, path);
  if (e) throw e;
  return fn();
}

export const stateIo = {
  /** The file's text, or undefined when it does not exist. */
  read(path: string): string | undefined {
    return call('read', path, () => {
      try {
        return readFileSync(path, 'utf8');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw e;
      }
    });
  },
  mkdir: (path: string) => call('mkdir', path, () => void mkdirSync(path, { recursive: true, mode: 0o700 })),
  /** A new file (never an existing one, never through a symlink). */
  create: (path: string, mode: number) =>
    call('open', path, () => openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode)),
  write(fd: number, path: string, text: string): void {
    call('write', path, () => {
      const b = Buffer.from(text);
      for (let at = 0; at < b.length; ) at += writeSync(fd, b, at);
    });
  },
  fsync: (fd: number, path: string) => call('fsync', path, () => fsyncSync(fd)),
  close: (fd: number, path: string) => call('close', path, () => closeSync(fd)),
  rename: (from: string, to: string) => call('rename', to, () => renameSync(from, to)),
  unlink: (path: string) => call('unlink', path, () => unlinkSync(path)),
  fsyncDir(dir: string): void {
    const fd = call('open', dir, () => openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY));
    try {
      call('dirfsync', dir, () => fsyncSync(fd));
    } finally {
      closeSync(fd);
    }
  },
};
