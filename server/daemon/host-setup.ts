/**
 * What happens before the daemon builds anything: its directories exist (0700), nobody
 * else holds them, they hold nothing sevd did not make (own-entries.ts), leftovers of a
 * crash are swept, the state directory takes writes, and a daemon started as root has
 * become its configured user. Any refusal here is one line
 * and exit code 2, with nothing started and nothing written.
 */
import { mkdirSync, readdirSync, readFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { SevdConfig } from '../config/defaults.js';
import { resolveGid } from '../transport/group.js';
import { isTmpName, PersistError, probeWritable } from '../util/state-file.js';
import { strerror } from '../util/strerror.js';
import { lockDirectory, StartupError, type DirectoryLock } from './dir-lock.js';
import type { PathDirectories } from '../confinement/paths.js';
import { checkOwnEntries, handOver, type OwnDirectories } from './own-entries.js';

export interface HostSetup {
  locks: DirectoryLock[];
  tls: { cert: Buffer; key: Buffer } | null;
  /** The confinement directories, resolved. */
  dirs: PathDirectories;
}

const asList = (v: string | string[] | null, fallback: string): string[] => (v === null ? [fallback] : typeof v === 'string' ? [v] : v);

function resolveUid(user: string | number): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => {
    const f = l.split(':');
    return typeof user === 'number' ? Number(f[2]) === user : f[0] === user;
  });
  if (!line) throw new StartupError(`sevd: $.user: unknown user '${user}'`);
  const f = line.split(':');
  return { uid: Number(f[2]), gid: Number(f[3]) };
}

/** The account to run as, or null to stay who we are. */
function account(config: SevdConfig): { uid: number; gid: number } | null {
  if (config.user === null && config.group === null) return null;
  const who = config.user !== null ? resolveUid(config.user) : { uid: process.getuid!(), gid: process.getgid!() };
  if (config.group !== null) {
    try {
      who.gid = resolveGid(config.group)!;
    } catch (e) {
      throw new StartupError(`sevd: $.group: ${(e as Error).message}`);
    }
  }
  if (process.getuid!() !== 0 && (who.uid !== process.getuid!() || who.gid !== process.getgid!())) {
    throw new StartupError(`sevd: $.user: switching to uid ${who.uid} gid ${who.gid} needs sevd to be started as root`);
  }
  return who;
}

/** One level, never through a link: what is there already was checked by checkOwnEntries. */
function mkdirIfMissing(dir: string): void {
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
}

function readTls(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new StartupError(`sevd: $.websocket.tls.${what}: cannot read '${path}': ${(e as Error).message}`);
  }
}

export async function prepareHost(config: SevdConfig): Promise<HostSetup> {
  const who = account(config);
  const dirs: PathDirectories = {
    images: config.paths.images,
    inputs: config.paths.inputs,
    dumps: asList(config.paths.dumps, join(config.stateDir, 'dumps')),
    migration: asList(config.paths.migration, join(config.stateDir, 'migration')),
  };
  // The configured directories first (the locks name them); what goes inside once locked.
  for (const d of [config.runDir, config.stateDir]) mkdirSync(d, { recursive: true, mode: 0o700 });
  const locks: DirectoryLock[] = [];
  try {
    locks.push(await lockDirectory(config.stateDir, 'state'));
    locks.push(await lockDirectory(config.runDir, 'run'));
    const own: OwnDirectories = { stateDir: config.stateDir, runDir: config.runDir, dumps: dirs.dumps, migration: dirs.migration };
    checkOwnEntries(own);
    const made = [join(config.runDir, 'guests'), ...(config.paths.dumps === null ? dirs.dumps : []), ...(config.paths.migration === null ? dirs.migration : [])];
    for (const d of made) mkdirIfMissing(d);
    const ws = config.websocket;
    const tls = ws && ws.tls ? { cert: readTls(ws.tls.cert, 'cert'), key: readTls(ws.tls.key, 'key') } : null;
    if (who && process.getuid!() === 0) {
      // Everything the daemon writes later must be the user's: its directories and state files.
      handOver(own, made, who);
      process.setgroups!([who.gid]);
      process.setgid!(who.gid);
      process.setuid!(who.uid);
    }
    // A crash mid-write leaves a temporary file; the directory is ours alone now.
    for (const f of readdirSync(config.stateDir)) if (isTmpName(f)) unlinkSync(join(config.stateDir, f));
    try {
      probeWritable(config.stateDir);
    } catch (e) {
      if (!(e instanceof PersistError)) throw e;
      throw new StartupError(`sevd: state directory ${config.stateDir} does not take writes: ${strerror(e.reason)}`);
    }
    return { locks, tls, dirs };
  } catch (e) {
    await Promise.all(locks.map((l) => l.release()));
    throw e;
  }
}
