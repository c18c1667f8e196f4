/** The shell under a real terminal (tmux) against sevd, and scripted against sevd and QEMU 7.2. */
import t from 'tap';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { RawClient } from '../helpers/raw-client.js';
import { startSevd } from '../helpers/sevd-process.js';
import { qemuAvailable, startQemu } from '../helpers/qemu.js';

const SHELL = resolve('dist/clients/shell/main.js');
const hasTmux = spawnSync('tmux', ['-V']).status === 0;

async function until(fn: () => boolean, what: string, ms = 8000): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

t.test('shell in tmux: typing, tab completion, an event while typing, HMP mode', { skip: hasTmux ? false : 'tmux is not installed' }, async (t) => {
  const sevd = await startSevd({ guests: [{ name: 'vm', paused: true }] });
  const session = `sevd-shell-${process.pid}`;
  const history = join(mkdtempSync(join(tmpdir(), 'sevd-hist-')), 'history');
  const tmux = (...args: string[]) => execFileSync('tmux', args, { encoding: 'utf8' });
  const pane = () => tmux('capture-pane', '-p', '-t', session);
  t.teardown(async () => {
    spawnSync('tmux', ['kill-session', '-t', session]);
    spawnSync('tmux', ['kill-session', '-t', `${session}-h`]);
    await sevd.stop();
  });
  tmux('new-session', '-d', '-s', session, '-x', '160', '-y', '40', `SEVD_SHELL_HISTORY=${history} ${process.execPath} ${SHELL} ${sevd.guestQmp('vm')}`);
  await until(() => pane().includes('(QEMU)'), 'the prompt');
  t.match(pane(), /Connected to QEMU 9\.2\.0/);

  tmux('send-keys', '-t', session, 'query-na', 'Tab');
  await until(() => pane().includes('(QEMU) query-name'), 'completion of query-na');
  tmux('send-keys', '-t', session, 'Enter');
  await until(() => pane().includes('{"return":{"name":"vm"}}'), 'the reply');
  t.pass('tab completion and a command');

  tmux('send-keys', '-t', session, 'query-st');
  await until(() => /\(QEMU\) query-st\s*$/m.test(pane()), 'the partial input');
  const other = await RawClient.connect(sevd.guestQmp('vm'));
  await other.negotiate();
  await other.execute('system_reset');
  await until(() => pane().includes('"event":"RESET"'), 'the event');
  t.match(pane(), /"event":"RESET".*\n.*\(QEMU\) query-st/s, 'the event is printed above the line being typed, which is kept');
  tmux('send-keys', '-t', session, 'Tab');
  await until(() => pane().includes('(QEMU) query-status'), 'completion');
  tmux('send-keys', '-t', session, 'Enter');
  await until(() => pane().includes('"status":"prelaunch"'), 'query-status reply');
  tmux('send-keys', '-t', session, 'human-monitor-command command-line="info status"', 'Enter');
  await until(() => pane().includes('VM status: paused (prelaunch)'), 'an HMP reply through QMP');
  await other.close();

  tmux('new-session', '-d', '-s', `${session}-h`, '-x', '160', '-y', '40', `SEVD_SHELL_HISTORY=${history} ${process.execPath} ${SHELL} -H ${sevd.guestQmp('vm')}`);
  const paneH = () => tmux('capture-pane', '-p', '-t', `${session}-h`);
  await until(() => paneH().includes('(QEMU)'), 'the HMP prompt');
  tmux('send-keys', '-t', `${session}-h`, 'info status', 'Enter');
  await until(() => paneH().includes('VM status: paused (prelaunch)'), 'HMP mode');
  t.pass('HMP mode');
});

/** Runs the shell with a script on stdin and returns what it printed after the banner. */
function runScript(target: string, script: string[], pretty = false): Promise<string[]> {
  return new Promise((resolvePromise) => {
    const p = spawn(process.execPath, [SHELL, ...(pretty ? ['-p'] : []), target], { env: { ...process.env, SEVD_SHELL_HISTORY: '/dev/null' } });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.on('exit', () =>
      resolvePromise(out.split('\n').map((l) => l.replace(/^(\(QEMU\) )+/, '')).filter((l) => l.startsWith('{') || l.startsWith('Error'))));
    for (const line of script) p.stdin.write(line + '\n');
    p.stdin.end();
  });
}

t.test('the same shell script against sevd and QEMU 7.2', { skip: qemuAvailable() ? false : 'no qemu-system-x86_64' }, async (t) => {
  const qemu = await startQemu();
  const sevd = await startSevd({ qemuVersion: '7.2.0', guests: [{ name: 'vm', paused: true }] });
  t.teardown(async () => {
    await qemu.stop();
    await sevd.stop();
  });
  const script = ['query-status', 'nosuch', 'query-status bogus=1', 'query-uuid', 'human-monitor-command command-line="info foo"', 'bad token', '{"execute":"query-status"}'];
  const [a, b] = await Promise.all([runScript(qemu.qmpPath, script), runScript(sevd.guestQmp('vm'), script)]);
  t.same(b, a, 'identical output');
  t.same(a[0], '{"return":{"status":"prelaunch","singlestep":false,"running":false}}');
  t.match(a[1]!, /CommandNotFound/);
  t.match(a[5]!, /Error while parsing command line/);
  const pretty = await runScript(sevd.guestQmp('vm'), ['query-uuid'], true);
  t.same(pretty, ['{'], '-p prints indented JSON (the first line is a lone brace)');
});
