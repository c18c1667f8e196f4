/**
 * One daemon per directory: the state directory is one chip's NV store, the run directory
 * its sockets. The lock is a listening socket in Linux's abstract namespace named after
 * the directory's device and inode: binding it is atomic, the kernel frees it when the
 * process dies (kill -9 included), so there is never a stale lock to clean up, and the
 * holder answers a connection with its pid so that a refused daemon can name it.
 * (Abstract names are per network namespace: daemons sharing a directory must share one.)
 */
import net from 'node:net';
import { statSync } from 'node:fs';

/** A refusal at start-up: one line on stderr, exit code 2. */
export class StartupError extends Error {
  readonly exitCode = 2;
}

export interface DirectoryLock {
  release(): Promise<void>;
}

function lockName(dir: string, role: string): string {
  const st = statSync(dir);
  return `\0sevd-lock/${role}/${st.dev}:${st.ino}`;
}

/** Asks the holder of `name` for its pid (undefined if it does not answer in time). */
function holderPid(name: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    const s = net.connect(name);
    let text = '';
    const done = () => {
      s.destroy();
      const pid = Number(text.trim());
      resolve(Number.isInteger(pid) && pid > 0 ? pid : undefined);
    };
    s.setEncoding('utf8');
    s.on('data', (d: string) => (text += d));
    s.on('end', done);
    s.on('error', done);
    s.setTimeout(1000, done);
  });
}

export async function lockDirectory(dir: string, role: 'state' | 'run'): Promise<DirectoryLock> {
  const name = lockName(dir, role);
  const server = net.createServer((s) => s.end(`${process.pid}\n`));
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(name, () => resolve());
    });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw e;
    const pid = await holderPid(name);
    throw new StartupError(`sevd: ${role} directory ${dir} is in use by another sevd (pid ${pid ?? 'unknown'})`);
  }
  server.unref();
  return { release: () => new Promise<void>((r) => server.close(() => r())) };
}
