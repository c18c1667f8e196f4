/**
 * The launch socket (docs/interface.md §15) over real sockets: only its four commands, one
 * guest per connection, the hand-over to that guest's monitor (fresh greeting), thread-id
 * as the launcher's pid, and the guest gone within a second of the connection closing,
 * by close or by SIGKILL of the process holding it.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { RawClient } from '../helpers/raw-client.js';
import { startSevd, type SevdProcess } from '../helpers/sevd-process.js';
import { QmpClient } from '../../clients/qmp/client.js';

const reply = async (c: RawClient, msg: object): Promise<any> => {
  c.send(JSON.stringify(msg));
  for (;;) {
    const m = JSON.parse(await c.next(10000));
    if (!m.event) return m;
  }
};

async function guestsGone(sevd: SevdProcess, ctl: QmpClient, name: string): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    const guests = await ctl.execute<{ name: string }[]>('query-guests');
    const asids = await ctl.execute<{ 'in-use': { name: string }[] }>('query-asids');
    if (!guests.some((g) => g.name === name) && !asids['in-use'].some((a) => a.name === name)) return Date.now() - t0;
    if (Date.now() - t0 > 5000) throw new Error(`guest ${name} still there after 5 s`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

t.test('launch socket', async (t) => {
  const sevd = await startSevd({ qemuVersion: '7.2.0', websocket: false, guests: [{ name: 'other', paused: true }] });
  t.teardown(() => sevd.stop());
  const launch = join(sevd.runDir, 'launch.qmp');
  t.equal(statSync(launch).mode & 0o777, 0o600, 'mode 0600 by default');
  const ctl = await QmpClient.connect(sevd.controlPath);
  t.teardown(() => ctl.close());

  t.test('only the launch commands; one guest; hand-over; pid', async (t) => {
    const c = await RawClient.connect(launch);
    const greeting = JSON.parse(await c.next());
    t.same(greeting.QMP.version.qemu, { major: 7, minor: 2, micro: 0 });
    t.same(await reply(c, { execute: 'qmp_capabilities' }), { return: {} });
    t.ok((await reply(c, { execute: 'query-version' })).return.qemu);
    t.ok((await reply(c, { execute: 'query-sev-capabilities' })).return.cbitpos, 'query-sev-capabilities');
    for (const cmd of ['query-guests', 'guest-del', 'query-status', 'quit', 'inject-fault']) {
      t.same((await reply(c, { execute: cmd })).error?.class, 'CommandNotFound', `${cmd} is not on the launch socket`);
    }
    // Two guest-adds in one write: the second is refused, the first guest is the connection's.
    c.send(JSON.stringify({ execute: 'guest-add', arguments: { name: 'l1', paused: true, 'sev-guest': { policy: 3 }, pid: process.pid }, id: 1 })
      + JSON.stringify({ execute: 'guest-add', arguments: { name: 'l2', paused: true }, id: 2 }));
    t.same(JSON.parse(await c.next(10000)), { return: {}, id: 1 });
    t.same(JSON.parse(await c.next(10000)), { error: { class: 'GenericError', desc: 'This launch connection has already created its guest' }, id: 2 });
    const fresh = JSON.parse(await c.next());
    t.ok(fresh.QMP, 'a fresh greeting: the connection is now the guest monitor');
    t.same(await reply(c, { execute: 'qmp_capabilities' }), { return: {} });
    t.equal((await reply(c, { execute: 'query-name' })).return.name, 'l1', 'its own guest');
    t.equal((await reply(c, { execute: 'query-sev' })).return.policy, 3);
    const cpus = (await reply(c, { execute: 'query-cpus-fast' })).return;
    t.equal(cpus[0]['thread-id'], process.pid, "thread-id is the launcher's pid");
    t.equal((await reply(c, { execute: 'query-sev-launch-measure' })).return.data.length, 64, 'measurement');
    t.notOk((await ctl.execute<{ name: string }[]>('query-guests')).some((g) => g.name === 'l2'));
    await c.close();
    const ms = await guestsGone(sevd, ctl, 'l1');
    t.ok(ms < 1000, `guest deleted ${ms} ms after the connection closed`);
    t.ok((await ctl.execute<{ name: string }[]>('query-guests')).some((g) => g.name === 'other'), 'other guests untouched');
  });

  t.test('refusals change nothing', async (t) => {
    const c = await RawClient.connect(launch);
    await c.next();
    await reply(c, { execute: 'qmp_capabilities' });
    t.equal((await reply(c, { execute: 'guest-add', arguments: { name: 'x', pid: sevd.proc.pid } })).error?.desc, "Parameter 'pid' expects the launcher's process id", "sevd's own pid is refused");
    t.equal((await reply(c, { execute: 'guest-add', arguments: { name: 'other' } })).error?.desc, "Guest 'other' already exists");
    t.match((await reply(c, { execute: 'guest-add', arguments: { name: 'y', firmware: '/etc/passwd' } })).error?.desc, /is not allowed for images/, 'files are confined');
    // After refusals the connection may still create its guest.
    t.same(await reply(c, { execute: 'guest-add', arguments: { name: 'z', paused: true } }), { return: {} });
    await c.close();
    await guestsGone(sevd, ctl, 'z');
  });

  t.test('SIGKILL of the launcher: guest gone within a second', async (t) => {
    const script = `
      const s = require('net').connect(${JSON.stringify(launch)});
      s.write('{"execute":"qmp_capabilities"}{"execute":"guest-add","arguments":{"name":"k1","paused":true,"sev-guest":{"policy":3},"pid":' + process.pid + '}}');
      let buf = '';
      s.on('data', (d) => { buf += d; if ((buf.match(/QMP/g) || []).length === 2) console.log('ready'); });`;
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
      child.once('exit', () => reject(new Error('launcher exited early')));
      setTimeout(() => reject(new Error('launcher not ready')), 10000);
    });
    const before = await ctl.execute<{ name: string }[]>('query-guests');
    t.ok(before.some((g) => g.name === 'k1'), 'guest exists');
    const asids = await ctl.execute<{ 'in-use': { name: string }[] }>('query-asids');
    t.ok(asids['in-use'].some((a) => a.name === 'k1'), 'with an ASID');
    child.kill('SIGKILL');
    const ms = await guestsGone(sevd, ctl, 'k1');
    t.ok(ms < 1000, `guest and ASID gone ${ms} ms after SIGKILL`);
    t.comment(`SIGKILL → guest gone: ${ms} ms`);
  });

  t.test('quit on the guest monitor ends the launch connection', async (t) => {
    const c = await RawClient.connect(launch);
    await c.next();
    await reply(c, { execute: 'qmp_capabilities' });
    await reply(c, { execute: 'guest-add', arguments: { name: 'q1', paused: true } });
    await c.next();
    await reply(c, { execute: 'qmp_capabilities' });
    c.send('{"execute":"quit"}');
    const deadline = Date.now() + 3000;
    while (!c.closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    t.ok(c.closed, 'EOF, as from a QEMU that quit');
    await guestsGone(sevd, ctl, 'q1');
  });
});
