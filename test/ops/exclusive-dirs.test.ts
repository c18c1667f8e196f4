/**
 * One chip, one owner: a second daemon on a state or run directory that a running daemon
 * holds exits 2 before touching anything and names the directory and the holder's pid; the
 * first keeps serving; after kill -9 of the holder a new daemon starts at once.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RawClient } from '../helpers/raw-client.js';
import { MAIN, startSevd } from '../helpers/sevd-process.js';

/** Runs a daemon that is expected to be refused: its exit code and stderr. */
function refused(config: object): Promise<{ code: number | null; stderr: string; stdout: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'sevd-second-'));
  const cfg = join(dir, 'c.json');
  writeFileSync(cfg, JSON.stringify({ websocket: false, ...config }));
  const p = spawn(process.execPath, [MAIN, '--config', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  let stdout = '';
  p.stderr.on('data', (d) => (stderr += d));
  p.stdout.on('data', (d) => (stdout += d));
  const timer = setTimeout(() => p.kill('SIGKILL'), 15000);
  return new Promise((r) => p.once('exit', (code) => {
    clearTimeout(timer);
    rmSync(dir, { recursive: true, force: true });
    r({ code, stderr, stdout });
  }));
}

const listing = (d: string) => readdirSync(d).map((f) => [f, statSync(join(d, f)).mtimeMs]).sort();

t.test('a second daemon on the same state or run directory is refused; the first keeps serving', async (t) => {
  const first = await startSevd({ websocket: false, guests: [{ name: 'g', paused: true }] });
  t.teardown(() => first.stop('SIGKILL'));
  const pid = first.proc.pid!;
  const other = mkdtempSync(join(tmpdir(), 'sevd-other-'));
  t.teardown(() => rmSync(other, { recursive: true, force: true }));
  const stateBefore = listing(first.stateDir);
  const runBefore = listing(join(first.runDir, 'guests'));

  const onState = await refused({ stateDir: first.stateDir, runDir: join(other, 'run') });
  t.equal(onState.code, 2, 'same state directory: exit 2');
  t.equal(onState.stderr, `sevd: state directory ${first.stateDir} is in use by another sevd (pid ${pid})\n`, 'one line naming the directory and the pid');
  t.notOk(onState.stdout.includes('sevd ready'));
  const onRun = await refused({ stateDir: join(other, 'state'), runDir: first.runDir });
  t.equal(onRun.code, 2, 'same run directory: exit 2');
  t.equal(onRun.stderr, `sevd: run directory ${first.runDir} is in use by another sevd (pid ${pid})\n`);
  t.same(readdirSync(join(other, 'state')).filter((f) => f !== 'dumps' && f !== 'migration'), [], 'the refused daemon wrote no state');

  t.same(listing(first.stateDir), stateBefore, "the first daemon's state files are untouched");
  t.same(listing(join(first.runDir, 'guests')), runBefore, "the first daemon's guest sockets are intact");
  const c = await RawClient.connect(first.controlPath);
  await c.negotiate();
  t.same((await c.execute('query-guests')).return.map((g: any) => g.name), ['g'], 'the first daemon still serves its control socket');
  const g = await RawClient.connect(first.guestQmp('g'));
  await g.negotiate();
  t.equal((await g.execute('query-status')).return.status, 'prelaunch', 'and its guest monitor');
  await g.close();
  await c.close();

  // kill -9: the kernel drops the lock with the process; a new daemon starts at once.
  first.proc.kill('SIGKILL');
  await new Promise((r) => first.proc.once('exit', r));
  const t0 = Date.now();
  const next = await startSevd({ websocket: false, stateDir: first.stateDir, runDir: first.runDir, guests: [{ name: 'g', paused: true }] });
  t.ok(Date.now() - t0 < 10000, `a new daemon took over the same directories after kill -9 (${Date.now() - t0} ms to ready)`);
  const c2 = await RawClient.connect(join(first.runDir, 'sevd.qmp'));
  await c2.negotiate();
  t.same((await c2.execute('query-guests')).return.map((g: any) => g.name), ['g']);
  await c2.close();
  await next.stop();
});
