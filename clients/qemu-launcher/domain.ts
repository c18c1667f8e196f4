/**
 * Domain start (docs/interface.md §15): the guest is created over the launch socket, whose
 * connection then is the guest's QMP monitor; libvirt's monitor chardev (an inherited
 * listening fd, or a path) is served from it byte for byte. The guest lives as long as this
 * process and its connection: SIGTERM/SIGINT, the monitor's EOF or sevd closing end both.
 */
import net from 'node:net';
import { readFileSync, unlinkSync } from 'node:fs';
import { LaunchConnection } from './launch-connection.js';
import { domainLine, guestSpec, QemuUsageError, type Option } from './qemu-args.js';
import type { LauncherConfig } from './config.js';

const PROG = 'qemu-system-x86_64';

export async function runDomain(opts: Option[], config: LauncherConfig): Promise<number> {
  const d = domainLine(opts);
  const spec = guestSpec(d, (p) => {
    try {
      return readFileSync(p, 'utf8');
    } catch (e) {
      throw new QemuUsageError(`Unable to read '${p}': ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'No such file or directory' : (e as Error).message}`);
    }
  });
  // libvirt's listening socket exists before this process; a path is bound here. libvirt
  // may connect at once: its connection waits (paused) until the guest exists.
  const server = net.createServer({ pauseOnConnect: true });
  const early: net.Socket[] = [];
  const holdEarly = (c: net.Socket) => early.push(c);
  server.on('connection', holdEarly);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    if ('fd' in d.monitor) server.listen({ fd: d.monitor.fd }, resolve);
    else {
      try {
        unlinkSync(d.monitor.path);
      } catch {
        // not there
      }
      server.listen(d.monitor.path, resolve);
    }
  });

  let launch: LaunchConnection;
  try {
    launch = await LaunchConnection.connect(config.launchSocket);
    await launch.negotiate();
  } catch (e) {
    throw new QemuUsageError(`sevd: cannot reach the launch socket '${config.launchSocket}': ${(e as Error).message}`);
  }
  const r = await launch.execute('guest-add', { ...spec, pid: process.pid });
  if (r['error']) {
    launch.close();
    throw new QemuUsageError(String(r['error'].desc));
  }
  // From here the connection is the guest's monitor: its fresh greeting waits for libvirt.
  let pending: Buffer[] = [launch.takeRest()];
  let client: net.Socket | null = null;
  const sock = launch.socket;

  return new Promise<number>((resolve) => {
    let done = false;
    const finish = (code: number) => {
      if (done) return;
      done = true;
      client?.destroy();
      sock.destroy();
      server.close();
      resolve(code);
    };
    sock.on('data', (b: Buffer) => {
      if (client) client.write(b);
      else pending.push(b);
    });
    // The guest went away (quit, guest-del, sevd stopped): QEMU would have exited.
    sock.on('close', () => finish(0));
    server.off('connection', holdEarly);
    const serve = (c: net.Socket) => {
      // One monitor client at a time, as QEMU's chardev.
      if (client) {
        c.destroy();
        return;
      }
      client = c;
      for (const b of pending) c.write(b);
      pending = [];
      c.on('data', (b: Buffer) => sock.write(b));
      c.on('error', () => undefined);
      // The monitor's EOF ends the guest (libvirt is gone or destroying it).
      c.on('close', () => finish(0));
      c.resume();
    };
    server.on('connection', serve);
    for (const c of early.splice(0)) serve(c);
    for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
      process.on(sig, () => {
        process.stderr.write(`${PROG}: terminating on signal ${sig === 'SIGTERM' ? 15 : sig === 'SIGINT' ? 2 : 1}\n`);
        finish(0);
      });
    }
  });
}
