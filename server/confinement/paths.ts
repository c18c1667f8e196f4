/**
 * Path confinement (interface §14): the one place that decides whether a file name given
 * by a monitor client may be opened. On a confined transport a name is resolved (relative
 * names against the kind's first directory, symlinks followed) and must lie inside one of
 * the kind's directories; the check touches no file (realpath reads only directory
 * entries and links), so a refused name is never opened, read or created. Unconfined
 * transports keep QEMU's behaviour: the name is used as given.
 */
import { lstatSync, readlinkSync, realpathSync, constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, resolve, sep } from 'node:path';
import { QmpError } from '../qmp/errors.js';
import { metrics } from '../observability/metrics.js';

export type FileKind = 'images' | 'inputs' | 'dumps' | 'migration';
export type ConfineMode = 'websocket' | 'all' | 'none';
/** Where a command came from: the transport of its session, or the operator's config. */
export type Origin = 'unix' | 'websocket' | 'config';

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

const inside = (path: string, dir: string) => path === dir || path.startsWith(dir.endsWith(sep) ? dir : dir + sep);

export class PathPolicy {
  constructor(readonly dirs: PathDirectories, readonly mode: ConfineMode) {}

  confines(origin: Origin): boolean {
    if (origin === 'config') return false;
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
      if (real !== undefined && dirs.some((d) => inside(real, realpathOfExisting(d) ?? d))) return real;
    }
    metrics.refusals.inc({ reason: `path-${kind}` });
    throw QmpError.generic(`Path '${name}' is not allowed for ${kind}`);
  }

  /**
   * Opens a file to write (a dump, a migration stream), truncating it. Confined: inside the
   * kind's directories, never through a symlink at the last component, mode 0600 even if
   * the file existed. Errors other than the refusal are node's, for the caller's wording.
   */
  async openForWrite(kind: FileKind, name: string, origin: Origin): Promise<FileHandle> {
    if (!this.confines(origin)) return open(name, 'w', 0o600);
    const path = this.resolve(kind, name, origin);
    const fh = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o600);
    try {
      await fh.chmod(0o600);
    } catch (e) {
      await fh.close();
      throw e;
    }
    return fh;
  }
}
