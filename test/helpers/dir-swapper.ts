/**
 * The attacker of a confinement race: a child process flipping a directory `sub` and a
 * symlink to a directory outside, and a driver issuing commands meanwhile. Shared by the
 * adversarial tests of confined paths (dumps, images, migration files and sockets).
 */
import { spawn, spawnSync } from 'node:child_process';

/**
 * The attacker: a child process flipping `sub` between its directory and a symlink to
 * `outside` in a tight loop for `ms`. Each flip is one renameat2(RENAME_EXCHANGE) of `sub`
 * and `sub.link` (Python's ctypes reaches it; node has no binding), so `sub` always exists:
 * every moment it is either the directory or the link.
 */
export const SWAPPER = `
import ctypes, os, sys, time
sub, outside, ms = sys.argv[1], sys.argv[2], int(sys.argv[3])
libc = ctypes.CDLL(None, use_errno=True)
link = sub + '.link'
def exchange():
    if libc.renameat2(-100, sub.encode(), -100, link.encode(), 2) != 0:
        raise OSError(ctypes.get_errno(), 'renameat2')
os.symlink(outside, link)
flips = 0
end = time.monotonic() + ms / 1000
while time.monotonic() < end:
    exchange()
    flips += 1
if os.path.islink(sub):
    exchange()
os.unlink(link)
print(flips)
`;
export const NO_SWAPPER = spawnSync('python3', ['-c', 'import ctypes; ctypes.CDLL(None).renameat2']).status !== 0 ? 'needs python3 and renameat2 (glibc 2.28+)' : false;

export function swapper(sub: string, outside: string, ms: number): Promise<number> {
  const p = spawn('python3', ['-c', SWAPPER, sub, outside, String(ms)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  p.stdout.on('data', (d) => (out += d));
  return new Promise((resolve, reject) => p.once('exit', (code) => (code === 0 ? resolve(Number(out)) : reject(new Error(`swapper exited ${code}`)))));
}

/** Issues commands from `workers` concurrent loops until `until` settles; returns every outcome. */
export async function hammer(until: Promise<unknown>, workers: number, one: (i: number) => Promise<string | undefined>): Promise<(string | undefined)[]> {
  let done = false;
  void until.finally(() => (done = true));
  const results: (string | undefined)[] = [];
  let next = 0;
  await Promise.all(Array.from({ length: workers }, async () => {
    while (!done) results.push(await one(next++));
  }));
  return results;
}

