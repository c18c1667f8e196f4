/** The guest registry and QEMU run states through the control and guest monitors. */
import t from 'tap';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RawClient } from '../helpers/raw-client.js';
import { startSevd } from '../helpers/sevd-process.js';

t.test('guest lifecycle', async (t) => {
  const sevd = await startSevd({ guests: [] });
  t.teardown(() => sevd.stop());
  const ctl = await RawClient.connect(sevd.controlPath);
  await ctl.negotiate();

  t.same((await ctl.execute('guest-add', { name: 'a', memory: '4G', paused: true })).return, {});
  const list = (await ctl.execute('query-guests')).return;
  t.same(list, [{ name: 'a', status: 'prelaunch', running: false, 'sev-state': null, 'qmp-path': sevd.guestQmp('a'), 'qga-path': sevd.guestQga('a') }]);
  t.same((await ctl.execute('guest-add', { name: 'a' })).error, { class: 'GenericError', desc: "Guest 'a' already exists" });
  t.same((await ctl.execute('guest-add', { name: 'bad name' })).error.desc, "Invalid guest name 'bad name': use 1 to 64 of A-Z a-z 0-9 _ . -");
  t.same((await ctl.execute('guest-add', { name: 'm', memory: 'lots' })).error.class, 'GenericError');
  t.same((await ctl.execute('guest-add', { name: 'f', firmware: '/nonexistent.fd' })).error.desc, "Could not load firmware '/nonexistent.fd': No such file or directory");
  t.notOk(existsSync(sevd.guestQmp('f')), 'a failed guest-add leaves no socket');
  t.same((await ctl.execute('guest-add', { memory: '1G' })).error.desc, "Parameter 'name' is missing");
  t.same((await ctl.execute('guest-add', { name: 'p', 'sev-guest': { policy: 'x' } })).error.desc, "Parameter 'sev-guest.policy' expects uint64");

  const g = await RawClient.connect(sevd.guestQmp('a'));
  await g.negotiate();
  t.same((await g.execute('query-status')).return, { status: 'prelaunch', running: false });
  t.same((await g.execute('stop')).return, {}, 'stop in prelaunch does nothing');
  t.same(await g.drain(50), [], 'no STOP event when already stopped');
  await g.execute('cont');
  const resume = JSON.parse(g.lines.shift() ?? (await g.next()));
  t.equal(resume.event, 'RESUME');
  t.same((await g.execute('query-status')).return, { status: 'running', running: true });
  await g.execute('stop');
  t.equal((await g.nextJson()).event, 'STOP');
  t.same((await g.execute('query-status')).return, { status: 'paused', running: false });
  t.same((await g.execute('human-monitor-command', { 'command-line': 'info status' })).return, 'VM status: paused\r\n');
  await g.execute('cont');
  await g.execute('system_powerdown');
  const evs: string[] = [];
  while (evs.length < 3) evs.push((await g.nextJson()).event);
  t.same(evs, ['RESUME', 'POWERDOWN', 'SHUTDOWN']);
  t.same((await g.execute('query-status')).return, { status: 'shutdown', running: false });
  t.same((await g.execute('cont')).error.desc, 'Resetting the Virtual Machine is required');

  // Memory: a 4 GiB guest is sparse; host writes through the agent show in dumps.
  const dump = join(sevd.dir, 'dump.bin');
  t.same((await g.execute('pmemsave', { val: 0xfffc0000, size: 0x40000, filename: dump })).return, {});
  t.equal(readFileSync(dump).subarray(0, 25).toString(), 'sevd built-in firmware v1', 'firmware mapped to end at 4 GiB');
  t.same((await g.execute('memsave', { val: 0x200000000, size: 16, filename: dump })).error.desc, 'Invalid addr 0x0000000200000000/size 16 specified');

  t.same((await ctl.execute('guest-del', { name: 'a' })).return, {});
  const shut = await g.nextJson();
  t.same([shut.event, shut.data], ['SHUTDOWN', { guest: false, reason: 'host-signal' }]);
  t.notOk(existsSync(sevd.guestQmp('a')), 'guest-del removes the sockets');
  t.same((await ctl.execute('guest-del', { name: 'a' })).error.desc, "Guest 'a' not found");

  // quit on a guest monitor: reply, SHUTDOWN, connection closes, guest gone.
  await ctl.execute('guest-add', { name: 'q' });
  const q = await RawClient.connect(sevd.guestQmp('q'));
  await q.negotiate();
  t.same((await q.execute('quit')).return, {});
  const sd = await q.nextJson();
  t.same(sd.data, { guest: false, reason: 'host-qmp-quit' });
  await new Promise((r) => q.socket.once('close', r));
  t.same((await ctl.execute('query-guests')).return, []);
  await ctl.close();
});

t.test('guest agent', async (t) => {
  const sevd = await startSevd({ guests: [{ name: 'g' }] });
  t.teardown(() => sevd.stop());
  const a = await RawClient.connect(sevd.guestQga('g'));
  t.same((await a.execute('guest-ping')).return, {});
  const info = (await a.execute('guest-info')).return;
  t.ok(info.supported_commands.some((c: any) => c.name === 'guest-memory-read' && c.enabled));
  const data = Buffer.from('hello guest').toString('base64');
  t.same((await a.execute('guest-memory-write', { gpa: 0x1000, data })).return, {});
  t.equal((await a.execute('guest-memory-read', { gpa: 0x1000, size: 11 })).return.data, data);
  t.same((await a.execute('guest-memory-read', { gpa: 0x1000, size: 2 * 1024 * 1024 })).error.class, 'GenericError');
  const g = await RawClient.connect(sevd.guestQmp('g'));
  await g.negotiate();
  await g.execute('stop');
  t.same((await a.execute('guest-memory-read', { gpa: 0, size: 1 })).error.desc, 'Guest is not running');
  await a.close();
  await g.close();
});

t.test('config: bad file exits 2 with file, JSON path and expectation', async (t) => {
  const { spawnSync } = await import('node:child_process');
  const { mkdtempSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const dir = mkdtempSync(join(tmpdir(), 'sevd-cfg-'));
  const run = (cfg: unknown, extra: string[] = []) => {
    const p = join(dir, 'c.json');
    writeFileSync(p, typeof cfg === 'string' ? cfg : JSON.stringify(cfg));
    const r = spawnSync(process.execPath, ['dist/server/main.js', '--config', p, ...extra], { encoding: 'utf8', timeout: 10000 });
    return { code: r.status, err: r.stderr.trim(), p };
  };
  let r = run({ platform: { cbitpos: 'x' } });
  t.equal(r.code, 2);
  t.equal(r.err, `sevd: ${r.p}: $.platform.cbitpos: must be integer`);
  r = run({ guests: [{ name: 'ok' }, { name: 'bad name!' }] });
  t.equal(r.code, 2);
  t.match(r.err, `$.guests[1].name: must match pattern`);
  r = run({ bogus: 1 });
  t.equal(r.err, `sevd: ${r.p}: $.bogus: is not a known setting`);
  r = run('{not json');
  t.equal(r.code, 2);
  t.match(r.err, `sevd: ${r.p}: $: expected a JSON document`);
  r = run({ runDir: join(dir, 'r'), stateDir: join(dir, 's'), guests: [{ name: 'f', firmware: '/nonexistent.fd' }] });
  t.equal(r.code, 2);
  t.equal(r.err, `sevd: ${r.p}: $.guests[0].firmware: Could not load firmware '/nonexistent.fd': No such file or directory`);
  r = run({}, ['--ws-port', 'abc']);
  t.equal(r.code, 2);
  t.match(r.err, 'expected a port number');
  const help = spawnSync(process.execPath, ['dist/server/main.js', '--help'], { encoding: 'utf8' });
  t.equal(help.status, 0);
  for (const f of ['--config', '--run-dir', '--state-dir', '--ws-host', '--ws-port']) t.match(help.stdout, f);
});

t.test('SIGTERM: SHUTDOWN to guest monitors, sockets removed, exit 0; control quit too', async (t) => {
  for (const how of ['SIGTERM', 'quit'] as const) {
    const sevd = await startSevd({ guests: [{ name: 'g', paused: true }] });
    const g = await RawClient.connect(sevd.guestQmp('g'));
    await g.negotiate();
    if (how === 'SIGTERM') sevd.proc.kill('SIGTERM');
    else {
      const c = await RawClient.connect(sevd.controlPath);
      await c.negotiate();
      t.same((await c.execute('quit')).return, {});
    }
    const ev = await g.nextJson();
    t.same([ev.event, ev.data], ['SHUTDOWN', { guest: false, reason: 'host-signal' }], how);
    const code = await new Promise((r) => sevd.proc.once('exit', (c) => r(c)));
    t.equal(code, 0, `${how}: exit 0`);
    t.notOk(existsSync(sevd.controlPath), `${how}: control socket removed`);
    t.notOk(existsSync(sevd.guestQmp('g')), `${how}: guest socket removed`);
    await sevd.stop();
  }
});
