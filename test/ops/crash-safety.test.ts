/** kill -9 and restart: the platform identity and the guests added over QMP survive, as on a rebooted host. */
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RawClient } from '../helpers/raw-client.js';
import { MAIN } from '../helpers/sevd-process.js';

async function boot(cfg: string) {
  const proc = spawn(process.execPath, [MAIN, '--config', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
  await new Promise<void>((r, j) => {
    proc.stdout.on('data', (d) => d.toString().includes('sevd ready') && r());
    proc.once('exit', (c) => j(new Error(`exited ${c}`)));
  });
  return proc;
}

t.test('guest definitions and platform identity survive kill -9', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sevd-crash2-'));
  const cfg = join(dir, 'c.json');
  writeFileSync(cfg, JSON.stringify({ runDir: join(dir, 'run'), stateDir: join(dir, 'state'), websocket: false, guests: [{ name: 'fromconfig', paused: true }] }));
  const ctlPath = join(dir, 'run', 'sevd.qmp');
  let proc = await boot(cfg);
  let c = await RawClient.connect(ctlPath);
  await c.negotiate();
  const pdh = (await c.execute('query-sev-capabilities')).return.pdh;
  t.same((await c.execute('guest-add', { name: 'sev', memory: '1G', 'sev-guest': { policy: 1 } })).return, {});
  t.same((await c.execute('guest-add', { name: 'plain', paused: true })).return, {});
  t.same((await c.execute('guest-add', { name: 'gone' })).return, {});
  t.same((await c.execute('guest-del', { name: 'gone' })).return, {});
  const before = (await c.execute('query-guests')).return.map((g: any) => [g.name, g.status]);
  t.same(before, [['fromconfig', 'prelaunch'], ['sev', 'running'], ['plain', 'prelaunch']]);
  proc.kill('SIGKILL');
  await new Promise((r) => proc.once('exit', r));

  proc = await boot(cfg);
  c = await RawClient.connect(ctlPath);
  await c.negotiate();
  t.equal((await c.execute('query-sev-capabilities')).return.pdh, pdh, 'the same PDH: platform identity unchanged');
  const after = (await c.execute('query-guests')).return.map((g: any) => [g.name, g.status, g['sev-state']]);
  t.same(after, [['fromconfig', 'prelaunch', null], ['sev', 'prelaunch', 'launch-secret'], ['plain', 'prelaunch', null]],
    'guests come back paused with a fresh launch; the deleted one stays deleted');
  const g = await RawClient.connect(join(dir, 'run', 'guests', 'sev.qmp'));
  await g.negotiate();
  t.same((await g.execute('query-sev-launch-measure')).return.data.length, 64, 'a new launch measurement');
  await g.close();
  t.same((await c.execute('guest-del', { name: 'plain' })).return, {});
  proc.kill('SIGTERM');
  await new Promise((r) => proc.once('exit', r));
  proc = await boot(cfg);
  c = await RawClient.connect(ctlPath);
  await c.negotiate();
  t.same((await c.execute('query-guests')).return.map((g: any) => g.name), ['fromconfig', 'sev'], 'guest-del is remembered too; a clean shutdown keeps definitions');
  proc.kill('SIGTERM');
  await new Promise((r) => proc.once('exit', r));
});
