/**
 * Path confinement (docs/interface.md §14): the one place that decides whether a file name given
 * by a monitor client may be opened. On a confined transport a name is resolved (relative
 * names against the kind's first directory, symlinks followed) and must lie inside one of
 * the kind's directories; the check touches no file (realpath reads only directory
 * entries and links), so a refused name is never opened, read or created. Since the
 * names can change between that check and the open (a directory swapped for a symlink),
 * the open is checked again on what was opened: the parent directory's descriptor, then
 * the file's, must really be inside, and a file to write must have no other hard link.
 * Unconfined transports keep QEMU's behaviour: the name is used as given.
 */
import { closeSync, fstatSync, lstatSync, openSync, readlinkSync, realpathSync, unlinkSync, constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, resolve, sep } from 'node:path';
import { QmpError } from '../errors/qmp-error.js';
import type { Metrics } from '../observability/metrics.js';

export type FileKind = 'images' | 'inputs' | 'dumps' | 'migration';
export type ConfineMode = 'websocket' | 'all' | 'none';
/** Where a command came from: the transport of its session, or the operator's config. */
/** `launch`: the launch socket (docs/interface.md §15), confined unless confinement is off. */
export type Origin = 'unix' | 'websocket' | 'config' | 'launch';

export type PathDirectories = Record<FileKind, string[]>;

/** Symlinks followed before a name counts as a loop (Linux's limit). */
const MAX_LINKS = 40;

/**
 * Where `abs` leads: its real path, or, for a name that does not exist yet, the real path
 * of its longest existing ancestor with the rest appended. A dangling symlink is followed
 * to where it points, since that is where a write through it would land. undefined: a loop.
 */
function realpathOfExisting(abs: string): string | undefined {
  const rest: string[] = [];
  let head = abs;
  for (let links = 0; links <= MAX_LINKS; ) {
    try {
      return join(realpathSync.native(head), ...rest);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') return undefined;
      let link: string | undefined;
      try {
        if (lstatSync(head).isSymbolicLink()) link = readlinkSync(head);
      } catch {
        // head does not exist at all: go up.
      }
      if (link !== undefined) {
        links++;
        head = resolve(dirname(head), link);
        continue;
      }
      const parent = dirname(head);
      if (parent === head) return undefined;
      rest.unshift(basename(head));
      head = parent;
    }
  }
  return undefined;
}

/** A descriptor's /proc link: reading it gives where the file really is (" (deleted)" once unlinked). */
const fdPath = (fd: number) => `/proc/self/fd/${fd}`;
/** Errors of opening a directory that a concurrent rename can cause. */
const RELOOK = ['ENOENT', 'ENOTDIR', 'ELOOP'];

/**
 * Opens a name as given, to read. Non-blocking, so that a FIFO nobody writes cannot hold
 * the daemon at the open (the reader checks what it opened).
 */
const openAsGiven = (name: string) => openSync(name, constants.O_RDONLY | constants.O_NONBLOCK);

const inside = (path: string, dir: string) => path === dir || path.startsWith(dir.endsWith(sep) ? dir : dir + sep);

export class PathPolicy {
  constructor(readonly dirs: PathDirectories, readonly mode: ConfineMode, private readonly metrics?: Metrics) {}

  confines(origin: Origin): boolean {
    if (origin === 'config') return false;
    if (origin === 'launch') return this.mode !== 'none';
    return this.mode === 'all' || (this.mode === 'websocket' && origin === 'websocket');
  }

  /**
   * The path to open for `name`: `name` itself where `origin` is not confined; otherwise
   * the resolved path inside one of the kind's directories, or GenericError.
   */
  resolve(kind: FileKind, name: string, origin: Origin): string {
    if (!this.confines(origin)) return name;
    const dirs = this.dirs[kind];
    if (dirs.length > 0 && name !== '' && !name.includes('\0')) {
      const real = realpathOfExisting(isAbsolute(name) ? resolve(name) : resolve(dirs[0]!, name));
      if (real !== undefined && this.allowed(kind, real)) return real;
    }
    this.refuse(kind, name);
  }

  private allowed(kind: FileKind, real: string): boolean {
    return this.dirs[kind].some((d) => inside(real, realpathOfExisting(d) ?? d));
  }

  private refuse(kind: FileKind, name: string): never {
    this.metrics?.refusals.inc({ reason: `path-${kind}` });
    throw QmpError.generic(`Path '${name}' is not allowed for ${kind}`);
  }

  /**
   * The parent directory of a confined name, open, with where it really is read back from
   * the descriptor (/proc/self/fd): no rename or symlink swap after this can move the
   * file's open away from it. A name whose directory vanished between the check and the
   * open (renamed away for an instant) is looked up again, a couple of times.
   */
  private openParent(kind: FileKind, name: string, origin: Origin): { dir: number; base: string } {
    for (let attempt = 0; ; attempt++) {
      const real = this.resolve(kind, name, origin);
      let dir: number;
      try {
        dir = openSync(dirname(real), constants.O_RDONLY | constants.O_DIRECTORY);
      } catch (e) {
        if (attempt < 2 && RELOOK.includes((e as NodeJS.ErrnoException).code ?? '')) continue;
        throw e;
      }
      if (!this.allowed(kind, readlinkSync(fdPath(dir)))) {
        closeSync(dir);
        this.refuse(kind, name);
      }
      return { dir, base: basename(real) };
    }
  }

  /** What was opened: a regular file, really inside, and (to be written) with no other name. */
  private checkOpened(kind: FileKind, name: string, fd: number, write: boolean): void {
    const st = fstatSync(fd);
    if (!st.isFile() || (write && st.nlink > 1) || !this.allowed(kind, readlinkSync(fdPath(fd)))) this.refuse(kind, name);
  }

  /**
   * Opens a file to read (an image, an input): a descriptor the caller closes. Confined:
   * opened and checked as one step (see openParent), never through a symlink at the last
   * component, regular files only.
   */
  openForRead(kind: FileKind, name: string, origin: Origin): number {
    if (!this.confines(origin)) return openAsGiven(name);
    const { dir, base } = this.openParent(kind, name, origin);
    try {
      const fd = openSync(`${fdPath(dir)}/${base}`, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
      try {
        this.checkOpened(kind, name, fd, false);
      } catch (e) {
        closeSync(fd);
        throw e;
      }
      return fd;
    } finally {
      closeSync(dir);
    }
  }

  /**
   * Opens a file to write (a dump, a migration stream), truncating it. Confined: opened
   * and checked as one step (see openParent), never through a symlink at the last
   * component, never a file with another hard link (writing it would write the other
   * name, wherever it is), mode 0600 even if the file existed; a refused file is left as
   * it was. Errors other than the refusal are node's, for the caller's wording.
   */
  async openForWrite(kind: FileKind, name: string, origin: Origin): Promise<FileHandle> {
    if (!this.confines(origin)) return open(name, 'w', 0o600);
    const { dir, base } = this.openParent(kind, name, origin);
    const at = `${fdPath(dir)}/${base}`;
    let fh: FileHandle | undefined;
    try {
      const flags = constants.O_WRONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
      let created = true;
      try {
        fh = await open(at, flags | constants.O_CREAT | constants.O_EXCL, 0o600);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        created = false;
        fh = await open(at, flags);
      }
      try {
        this.checkOpened(kind, name, fh.fd, true);
      } catch (e) {
        if (created) unlinkSync(at);
        throw e;
      }
      await fh.truncate(0);
      await fh.chmod(0o600);
      return fh;
    } catch (e) {
      await fh?.close();
      throw e;
    } finally {
      closeSync(dir);
    }
  }

  /**
   * A name to bind, connect to or unlink (a unix: migration socket) that cannot be moved
   * outside: confined, the checked parent directory is held open and the name is reached
   * through its descriptor (`/proc/self/fd/N/base`) until `release()`. Unconfined: the name.
   */
  holdName(kind: FileKind, name: string, origin: Origin): { path: string; release(): void } {
    if (!this.confines(origin)) return { path: name, release: () => undefined };
    const { dir, base } = this.openParent(kind, name, origin);
    let open = true;
    return {
      path: `${fdPath(dir)}/${base}`,
      release: () => {
        if (open) closeSync(dir);
        open = false;
      },
    };
  }

  /** The files a guest definition names, opened as the client that gave it. */
  access(origin: Origin): FileAccess {
    return {
      origin,
      resolve: (kind, name) => this.resolve(kind, name, origin),
      openForRead: (kind, name) => this.openForRead(kind, name, origin),
    };
  }
}

/** What a guest's definition may open: the names its client may give, and reading them. */
export interface FileAccess {
  /** Who named the files (their URIs too are opened as that client's). */
  readonly origin: Origin;
  resolve(kind: FileKind, name: string): string;
  /** A descriptor to read from; the caller closes it. */
  openForRead(kind: FileKind, name: string): number;
}

/** The operator's own files (and tests): names used as given. */
export const UNCONFINED: FileAccess = { origin: 'config', resolve: (_kind, name) => name, openForRead: (_kind, name) => openAsGiven(name) };
