/** The client library against sevd (every transport) and against the real QEMU 7.2. */
import t from 'tap';
import { spawn } from 'node:child_process';
import { QmpClient, QgaClient, QMPError } from '../../clients/qmp/client.js';
import { startSevd } from '../helpers/sevd-process.js';
import { qemuAvailable, startQemu } from '../helpers/qemu.js';

/** The scripted session run against both servers; returns what a user would compare. */
async function scripted(c: QmpClient) {
  const out: unknown[] = [];
  out.push(Object.keys(c.greeting.QMP).sort(), c.greeting.QMP.capabilities, c.oobEnabled);
  const st = await c.execute<Record<string, unknown>>('query-status');
  out.push(st['status'], st['running']);
  try {
    await c.execute('no-such-command');
  } catch (e) {
    out.push(e instanceof QMPError ? [e.cls, e.desc] : String(e));
  }
  try {
    await c.execute('query-status', { bogus: 1 });
  } catch (e) {
    out.push(e instanceof QMPError ? [e.cls, e.desc] : String(e));
  }
  await c.execute('cont');
  out.push((await c.nextEvent('RESUME', 5000)).event);
  await c.execute('stop');
  const stop = await c.nextEvent('STOP', 5000);
  out.push(stop.event, typeof stop.timestamp.seconds, stop.data);
  // Pipelining: three commands in flight at once, replies matched by id.
  const [a, b, u] = await Promise.all([c.execute('query-status'), c.execute('query-kvm').catch(() => 'kvm'), c.execute('query-uuid')]);
  out.push((a as Record<string, unknown>)['status'], typeof b, u);
  return out;
}

t.test('library: the same scripted session against sevd and QEMU 7.2', { skip: qemuAvailable() ? false : 'no qemu-system-x86_64' }, async (t) => {
  const qemu = await startQemu();
  const sevd = await startSevd({ qemuVersion: '7.2.0', guests: [{ name: 'vm', paused: true }] });
  t.teardown(async () => {
    await qemu.stop();
    await sevd.stop();
  });
  const q = await QmpClient.connect(qemu.qmpPath);
  const s = await QmpClient.connect(sevd.guestQmp('vm'));
  const [rq, rs] = [await scripted(q), await scripted(s)];
  t.same(rs, rq, 'identical results');
  t.equal(rq[3], 'prelaunch');
  q.close();
  s.close();
});

t.test('library over every sevd transport', async (t) => {
  const sevd = await startSevd({ guests: [{ name: 'vm', paused: true }] });
  t.teardown(() => sevd.stop());
  const targets = [
    sevd.guestQmp('vm'),
    `unix:${sevd.guestQmp('vm')}`,
    `ws://127.0.0.1:${sevd.wsPort}/qmp/vm`,
    `ws+binary://127.0.0.1:${sevd.wsPort}/qmp/vm`,
  ];
  for (const target of targets) {
    const c = await QmpClient.connect(target);
    t.equal(c.greeting.QMP.version.qemu.major, 9, `${target}: greeting`);
    t.ok(c.oobEnabled, `${target}: oob negotiated`);
    t.same(await c.execute('query-name'), { name: 'vm' }, `${target}: command`);
    const err = await c.execute('query-status', {}, { oob: true }).catch((e: unknown) => e);
    t.ok(err instanceof QMPError && err.cls === 'GenericError' && err.desc === 'The command query-status does not support OOB', `${target}: exec-oob`);
    t.match(await c.hmp('info status'), /VM status/, `${target}: HMP`);
    c.close();
  }
  // tcp: through a plain TCP relay to the guest's socket (as QEMU's -qmp tcp: would serve).
  const net = await import('node:net');
  const relay = net.createServer((c) => c.pipe(net.connect(sevd.guestQmp('vm'))).pipe(c));
  await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
  const tcp = await QmpClient.connect(`tcp:127.0.0.1:${(relay.address() as { port: number }).port}`);
  t.same(await tcp.execute('query-name'), { name: 'vm' }, 'tcp: command');
  tcp.close();
  relay.close();
  const qga = await QgaClient.connect(`ws://127.0.0.1:${sevd.wsPort}/qga/vm`);
  await t.rejects(qga.execute('guest-ping'), /Guest is not running/, 'paused: the agent does not answer');
  const vm = await QmpClient.connect(sevd.guestQmp('vm'));
  await vm.execute('cont');
  t.same(await qga.execute('guest-ping'), {});
  qga.close();
  const qga2 = await QgaClient.connect(sevd.guestQga('vm'));
  t.match(await qga2.execute('guest-info'), { version: '0.1.0' });
  qga2.close();
  vm.close();
});

t.test('timeouts, closed connections and the reconnect helper', async (t) => {
  const sevd = await startSevd({ guests: [] });
  t.teardown(() => sevd.stop());
  const c = await QmpClient.connect(sevd.controlPath, { timeoutMs: 2000 });
  // A command whose reply cannot come: the daemon quits underneath it.
  const quit = c.execute('quit');
  await quit;
  await t.rejects(c.execute('query-guests'), /connection closed|no reply|ECONNRESET|EPIPE/);
  // connectWithRetry waits for a daemon that starts later.
  const { mkdtempSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = mkdtempSync(join(tmpdir(), 'sevd-retry-'));
  const pending = QmpClient.connectWithRetry(join(dir, 'run', 'sevd.qmp'), { attempts: 100, delayMs: 100 });
  const proc = spawn(process.execPath, ['dist/server/main.js', '--run-dir', join(dir, 'run'), '--state-dir', join(dir, 'state'), '--ws-port', '0'], { stdio: 'ignore' });
  const late = await pending;
  t.ok(Array.isArray(await late.execute('query-guests')), 'connected once the daemon was up');
  late.close();
  proc.kill('SIGTERM');
  await new Promise((r) => proc.once('exit', r));
});
