/**
 * Started as root with `user: nobody`, sevd creates its directories and sockets for that
 * user and runs as it before serving anyone; clients still work. And the systemd unit
 * keeps its hardening score.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { QmpClient } from '../../clients/qmp/client.js';
import { MAIN, NOBODY, nobodyCanRead, startSevd } from '../helpers/sevd-process.js';

t.test('user: nobody — directories, sockets and the process belong to it', { skip: process.getuid!() !== 0 ? 'needs root' : !nobodyCanRead() ? 'nobody cannot read this checkout' : false }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sevd-priv-'));
  chmodSync(dir, 0o755); // nobody must reach its directories below
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const runDir = join(dir, 'run');
  const stateDir = join(dir, 'state');
  const sevd = await startSevd({ runDir, stateDir, user: 'nobody', group: 65534, guests: [{ name: 'g', memory: '16M', paused: true, 'sev-guest': { policy: 1 } }] });
  t.teardown(() => sevd.stop());
  const status = readFileSync(`/proc/${sevd.proc.pid}/status`, 'utf8');
  t.match(status, /\nUid:\t65534\t65534\t65534\t65534\n/, 'real, effective, saved and fs uid are nobody');
  t.match(status, /\nGid:\t65534\t65534\t65534\t65534\n/, 'and the gids');
  t.match(status, /\nGroups:\t65534 ?\n/, 'no supplementary groups but its own');
  t.match(status, /\nCapEff:\t0000000000000000\n/, 'no effective capabilities');
  for (const p of [join(runDir, 'sevd.qmp'), join(runDir, 'guests', 'g.qmp'), join(runDir, 'guests', 'g.qga'), runDir, stateDir, join(stateDir, 'platform.json'), join(stateDir, 'dumps'), join(stateDir, 'migration')]) {
    const st = statSync(p);
    t.same([st.uid, st.gid], [NOBODY.uid, NOBODY.gid], `${p.slice(dir.length)} belongs to nobody`);
  }
  const c = await QmpClient.connect(join(runDir, 'sevd.qmp'));
  t.same(await c.execute('guest-add', { name: 'h', memory: '16M', paused: true, 'sev-guest': { policy: 1 } }), {}, 'clients still work (a guest with state written as nobody)');
  t.equal(statSync(join(stateDir, 'guests.json')).uid, NOBODY.uid);
  await c.close();
  const g = await QmpClient.connect(`ws://127.0.0.1:${sevd.wsPort}/qmp/g`);
  t.equal((await g.execute('query-sev') as any).enabled, true, 'and over the WebSocket');
  const dump = await g.execute('memsave', { val: 0, size: 4096, filename: 'g.dump' });
  t.same(dump, {});
  t.equal(statSync(join(stateDir, 'dumps', 'g.dump')).uid, NOBODY.uid, 'dumps are written as nobody');
  await g.close();
});

t.test('an unknown user is a clear start-up error', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sevd-nouser-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'c.json'), JSON.stringify({ user: 'no-such-user-sevd', stateDir: join(dir, 'state'), runDir: join(dir, 'run'), websocket: false, guests: [] }));
  const r = spawnSync(process.execPath, [MAIN, '--config', join(dir, 'c.json')], { encoding: 'utf8' });
  t.equal(r.status, 2);
  t.same(readdirSync(dir), ['c.json'], 'nothing created');
  t.equal(r.stderr, "sevd: $.user: unknown user 'no-such-user-sevd'\n");
});

t.test('systemd unit: hardened to ≤ 2.0 in systemd-analyze security', async (t) => {
  const unit = resolve('config/sevd.service');
  const r = spawnSync('systemd-analyze', ['security', '--offline=yes', unit], { encoding: 'utf8' });
  if (r.error) {
    t.comment('systemd-analyze is not installed: the score is not checked here');
    return;
  }
  const m = /Overall exposure level for sevd\.service: ([\d.]+)/.exec(r.stdout + r.stderr);
  t.ok(m, 'systemd-analyze printed a score');
  t.ok(Number(m![1]) <= 2.0, `exposure ${m![1]} ≤ 2.0`);
  const text = readFileSync(unit, 'utf8');
  for (const line of ['User=sevd', 'NoNewPrivileges=yes', 'CapabilityBoundingSet=\n', 'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6', 'SystemCallFilter=@system-service', 'ProtectSystem=strict']) {
    t.ok(text.includes(line), `unit has ${line.trim()}`);
  }
});
