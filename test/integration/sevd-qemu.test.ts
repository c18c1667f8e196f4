/**
 * sevd-qemu (docs/interface.md §15) as libvirt runs it: a domain command line as libvirt 9.0
 * builds it (monitor chardev an inherited listening fd, or a path), the guest created over
 * the launch socket and its monitor served byte for byte; QEMU's errors and exit codes;
 * SIGTERM, monitor EOF and SIGKILL each leave nothing in sevd; the capability probe relayed
 * to the real QEMU with -daemonize/-pidfile/SIGTERM and sevd's SEV capabilities.
 */
import t from 'tap';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { RawClient } from '../helpers/raw-client.js';
import { startSevd } from '../helpers/sevd-process.js';
import { qemuAvailable } from '../helpers/qemu.js';
import { QmpClient } from '../../clients/qmp/client.js';

const LAUNCHER = resolve('dist/clients/qemu-launcher/main.js');
const OVMF = '/usr/share/OVMF/OVMF_CODE.fd';

export function domainArgs(name: string, monitor: string, extra: string[] = []): string[] {
  return [
    '-name', `guest=${name},debug-threads=on`, '-S',
    ...(existsSync(OVMF) ? [
      '-blockdev', JSON.stringify({ driver: 'file', filename: OVMF, 'node-name': 'libvirt-pflash0-storage', 'auto-read-only': true, discard: 'unmap' }),
      '-blockdev', JSON.stringify({ 'node-name': 'libvirt-pflash0-format', 'read-only': true, driver: 'raw', file: 'libvirt-pflash0-storage' }),
    ] : []),
    '-machine', `pc-q35-7.2,usb=off,dump-guest-core=off,memory-backend=pc.ram,confidential-guest-support=lsec0${existsSync(OVMF) ? ',pflash0=libvirt-pflash0-format' : ''}`,
    '-accel', 'kvm', '-cpu', 'EPYC-Milan', '-m', '256',
    '-object', JSON.stringify({ 'qom-type': 'memory-backend-ram', id: 'pc.ram', size: 268435456 }),
    '-overcommit', 'mem-lock=off', '-smp', '1,sockets=1,dies=1,cores=1,threads=1', '-uuid', '0e2a3c4e-0000-4000-8000-000000000001',
    '-display', 'none', '-no-user-config', '-nodefaults',
    '-chardev', `socket,id=charmonitor,${monitor},server=on,wait=off`, '-mon', 'chardev=charmonitor,id=monitor,mode=control',
    '-rtc', 'base=utc', '-no-shutdown', '-boot', 'strict=on',
    '-device', JSON.stringify({ driver: 'virtio-balloon-pci', id: 'balloon0', bus: 'pcie.0', addr: '0x5' }),
    '-object', JSON.stringify({ 'qom-type': 'sev-guest', id: 'lsec0', cbitpos: 51, 'reduced-phys-bits': 1, policy: 3 }),
    '-sandbox', 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny', '-msg', 'timestamp=on',
    ...extra,
  ];
}

t.test('sevd-qemu', async (t) => {
  const sevd = await startSevd({ qemuVersion: '7.2.0', websocket: false, guests: [] });
  t.teardown(() => sevd.stop());
  const dir = mkdtempSync(join(tmpdir(), 'sevd-qemu-test-'));
  const cfg = join(dir, 'qemu.json');
  writeFileSync(cfg, JSON.stringify({ launchSocket: join(sevd.runDir, 'launch.qmp'), qemu: 'qemu-system-x86_64' }));
  const env = { ...process.env, SEVD_QEMU_CONFIG: cfg };
  const ctl = await QmpClient.connect(sevd.controlPath);
  t.teardown(() => ctl.close());
  const guests = async () => (await ctl.execute<{ name: string }[]>('query-guests')).map((g) => g.name);
  const waitGone = async (name: string) => {
    const t0 = Date.now();
    while ((await guests()).includes(name)) {
      if (Date.now() - t0 > 5000) throw new Error(`${name} still there`);
      await new Promise((r) => setTimeout(r, 10));
    }
    return Date.now() - t0;
  };

  t.test('QEMU-style errors, exit 1, nothing left', async (t) => {
    for (const [args, line] of [
      [['-frobnicate'], 'qemu-system-x86_64: -frobnicate: invalid option'],
      [['-m'], 'qemu-system-x86_64: -m: requires an argument'],
      [domainArgs('bad', `path=${join(dir, 'bad.sock')}`, ['-cpu', 'Haswell']), "qemu-system-x86_64: unable to find CPU model 'Haswell'"],
    ] as [string[], string][]) {
      const r = spawnSync(process.execPath, [LAUNCHER, ...args], { env, encoding: 'utf8' });
      t.equal(r.status, 1, `${args.at(-1)}: exit 1`);
      t.ok(r.stderr.startsWith(line), line);
    }
    t.same(await guests(), [], 'nothing created');
  });

  const startDomain = async (name: string): Promise<{ child: ChildProcess; mon: RawClient }> => {
    const path = join(dir, `${name}.sock`);
    const child = spawn(process.execPath, [LAUNCHER, ...domainArgs(name, `path=${path}`)], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    for (let i = 0; !existsSync(path); i++) {
      if (child.exitCode !== null || i > 500) throw new Error(`sevd-qemu did not listen: ${err}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    const mon = await RawClient.connect(path);
    return { child, mon };
  };
  const exitCode = (c: ChildProcess) => new Promise<number | null>((r) => (c.exitCode !== null ? r(c.exitCode) : c.once('exit', (code) => r(code))));

  t.test('domain start, monitor served, SIGTERM', async (t) => {
    const { child, mon } = await startDomain('d1');
    const greeting = JSON.parse(await mon.next(10000));
    t.same(greeting.QMP.version.qemu, { major: 7, minor: 2, micro: 0 }, 'the guest monitor greets libvirt');
    mon.send('{"execute":"qmp_capabilities","id":"libvirt-1"}\r\n');
    t.equal(await mon.next(), '{"return": {}, "id": "libvirt-1"}', 'byte for byte');
    mon.send('{"execute":"query-cpus-fast","id":"libvirt-2"}\r\n');
    const cpus = JSON.parse(await mon.next()).return;
    t.equal(cpus[0]['thread-id'], child.pid, "thread-id: the launcher's pid");
    mon.send('{"execute":"query-sev","id":"libvirt-3"}\r\n');
    t.equal(JSON.parse(await mon.next()).return.policy, 3);
    t.ok((await guests()).includes('d1'));
    child.kill('SIGTERM');
    t.equal(await exitCode(child), 0, 'SIGTERM: exit 0');
    t.ok((await waitGone('d1')) < 1000, 'guest deleted');
  });

  t.test('monitor EOF ends the guest', async (t) => {
    const { child, mon } = await startDomain('d2');
    await mon.next(10000);
    await mon.close();
    t.equal(await exitCode(child), 0, 'exit 0');
    await waitGone('d2');
  });

  t.test('SIGKILL of sevd-qemu: guest gone within a second', async (t) => {
    const { child, mon } = await startDomain('d3');
    await mon.next(10000);
    child.kill('SIGKILL');
    const ms = await waitGone('d3');
    t.ok(ms < 1000, `gone after ${ms} ms`);
    t.comment(`sevd-qemu SIGKILL → guest gone: ${ms} ms`);
    await mon.close();
  });

  t.test('inherited listening fd (libvirt\'s fd=N)', { skip: spawnSync('python3', ['-V']).status === 0 ? false : 'python3 is needed to pass a listening fd' }, async (t) => {
    const path = join(dir, 'fd.sock');
    // A listening socket inherited as fd 3, as libvirt passes it.
    const py = `import socket,os,sys\ns=socket.socket(socket.AF_UNIX)\ns.bind(${JSON.stringify(path)})\ns.listen(1)\nos.dup2(s.fileno(),3)\nos.set_inheritable(3,True)\nos.execv(sys.argv[1],sys.argv[1:])`;
    const child = spawn('python3', ['-c', py, process.execPath, LAUNCHER, ...domainArgs('d4', 'fd=3')], { env, stdio: ['ignore', 'ignore', 'inherit'] });
    for (let i = 0; !existsSync(path) && i < 500; i++) await new Promise((r) => setTimeout(r, 10));
    const mon = await RawClient.connect(path);
    t.ok(JSON.parse(await mon.next(10000)).QMP, 'greeting over the inherited fd');
    child.kill('SIGTERM');
    t.equal(await exitCode(child), 0);
    await waitGone('d4');
    await mon.close();
  });

  t.test('capability probe: relayed, daemonized, SEV from sevd', { skip: qemuAvailable() ? false : 'qemu-system-x86_64 is not installed' }, async (t) => {
    const qmp = join(dir, 'probe.monitor');
    const pidfile = join(dir, 'probe.pid');
    const r = spawnSync(process.execPath, [LAUNCHER, '-S', '-no-user-config', '-nodefaults', '-nographic', '-machine', 'none,accel=kvm:tcg',
      '-qmp', `unix:${qmp},server=on,wait=off`, '-pidfile', pidfile, '-daemonize'], { env, encoding: 'utf8', timeout: 20000 });
    t.equal(r.status, 0, 'the parent exits 0 once the monitor listens');
    t.equal(r.stderr, '', 'and says nothing');
    const pid = Number(readFileSync(pidfile, 'utf8'));
    t.ok(pid > 0, 'pidfile written');
    const c = await RawClient.connect(qmp);
    const g = JSON.parse(await c.next());
    t.same(g.QMP.version.qemu, { major: 7, minor: 2, micro: g.QMP.version.qemu.micro }, "the real QEMU's greeting");
    c.send('{"execute":"qmp_capabilities","id":"libvirt-1"}\r\n');
    await c.next();
    c.send('{"execute":"query-sev-capabilities","id":"libvirt-2"}\r\n');
    const capsLine = await c.next();
    t.match(capsLine, /^\{"return": \{.*\}, "id": "libvirt-2"\}$/, "in QEMU's format");
    const caps = JSON.parse(capsLine);
    t.same(caps, { return: await ctl.execute('query-sev-capabilities'), id: 'libvirt-2' }, "sevd's SEV capabilities");
    c.send('{"execute":"qom-list-types","arguments":{"implements":"confidential-guest-support"},"id":"libvirt-3"}\r\n');
    t.match(await c.next(), /"sev-guest"/, 'sev-guest among the QOM types');
    process.kill(pid, 'SIGTERM');
    for (let i = 0; (existsSync(qmp) || existsSync(pidfile)) && i < 300; i++) await new Promise((r) => setTimeout(r, 10));
    t.notOk(existsSync(qmp), 'socket removed');
    t.notOk(existsSync(pidfile), 'pidfile removed');
    await c.close();
  });
});
