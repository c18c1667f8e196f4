/**
 * The launch socket (`<runDir>/launch.qmp`, docs/interface.md §15): the least privilege an
 * emulator launcher (sevd-qemu under libvirt) needs. A connection may negotiate, ask the
 * version and the SEV capabilities, and create one guest; that guest belongs to the
 * connection and is deleted as soon as the connection closes, for whatever reason (the
 * launcher's SIGKILL included: the kernel closes its socket). Hand-over: once `guest-add`
 * has replied, the same connection becomes that guest's QMP monitor and receives a fresh
 * greeting; it never reaches another guest. File names are confined (origin `launch`); the
 * session inputs libvirt writes where sevd cannot read come inline (`sev-inputs`).
 */
import net from 'node:net';
import { mkdtempSync, openSync, rmSync, writeFileSync, existsSync, constants } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Monitor } from '../qmp/monitor.js';
import { QmpSession, type SessionSink } from '../qmp/session.js';
import { Dispatcher, type Handlers } from '../dispatch/dispatcher.js';
import type { SchemaType } from '../dispatch/schema-types.js';
import { compiledSchema } from '../dispatch/compiled-schema.js';
import { commonHandlers, type SessionContext } from '../dispatch/common-commands.js';
import { schema } from '../../schema/index.js';
import { QmpError } from '../errors/qmp-error.js';
import { sevCapabilitiesHandler, type SevHostContext } from './sev-platform-commands.js';
import { monitorHooks } from './monitor-hooks.js';
import { UnixListener } from '../transport/unix-socket.js';
import type { GuestRegistry } from './registry.js';
import type { HostContext } from './host.js';
import type { Vm } from './vm.js';
import type { FileAccess } from '../confinement/paths.js';

interface Connection {
  socket: net.Socket;
  session: QmpSession;
  sink: SessionSink;
  vm: Vm | null;
  adding: boolean;
  closed: boolean;
}

interface LaunchContext extends SessionContext, SevHostContext {
  connection(session: QmpSession): Connection;
}

/** The pid libvirt will see as the vCPU threads: a live process, never sevd itself. */
function checkPid(pid: number): number {
  if (!Number.isInteger(pid) || pid <= 1 || pid === process.pid || !existsSync(`/proc/${pid}`)) {
    throw QmpError.generic(`Parameter 'pid' expects the launcher's process id`);
  }
  return pid;
}

export class LaunchSocket {
  private readonly server: net.Server;
  private readonly connections = new Set<Connection>();
  private readonly monitor: Monitor<LaunchContext>;

  private constructor(readonly path: string, private readonly registry: GuestRegistry, private readonly host: HostContext) {
    const bySession = new WeakMap<QmpSession, Connection>();
    this.monitor = new Monitor<LaunchContext>({
      kind: 'launch',
      dispatcher: new Dispatcher<LaunchContext>(compiledSchema(schema, 'launch', host.version), this.handlers()),
      context: { sev: host.sev, cbitpos: host.config.platform.cbitpos, connection: (s) => bySession.get(s)! },
      version: host.version, packageName: host.packageName, limits: host.sessionLimits, log: host.log, owner: null,
      hooks: monitorHooks('launch', null, host.faults, host.metrics),
    });
    this.server = net.createServer((socket) => this.accept(socket, bySession));
  }

  static async listen(path: string, registry: GuestRegistry, host: HostContext, owner: { mode: number; gid?: number }): Promise<LaunchSocket> {
    const l = new LaunchSocket(path, registry, host);
    // UnixListener's private bind (umask, then chmod/chown), with this server.
    await UnixListener.bind(l.server, path, owner);
    return l;
  }

  private handlers(): Handlers<LaunchContext> {
    return {
      ...commonHandlers<LaunchContext>(),
      'query-sev-capabilities': sevCapabilitiesHandler<LaunchContext>(),
      'guest-add': async (args, ctx) => {
        const conn = ctx.connection(ctx.session);
        if (conn.vm || conn.adding) throw QmpError.generic('This launch connection has already created its guest');
        conn.adding = true;
        try {
          const vm = await this.add(args);
          if (conn.closed) {
            // The launcher went away while its guest was being created.
            await this.registry.del(vm.name).catch(() => undefined);
            return;
          }
          conn.vm = vm;
          vm.closeHooks.push(() => conn.socket.destroy());
          // After the reply is written: the connection becomes the guest's monitor.
          setImmediate(() => this.handOver(conn, vm));
        } finally {
          conn.adding = false;
        }
      },
    };
  }

  /** guest-add with the inline session inputs written where only sevd reads them. */
  private async add({ 'sev-inputs': inputs, pid, ...spec }: SchemaType<'LaunchGuestSpec'>): Promise<Vm> {
    const thread = pid === undefined ? 0 : checkPid(Number(pid));
    const confined = this.host.paths.access('launch');
    const own = new Set<string>();
    let dir: string | null = null;
    if (inputs && (inputs['dh-cert'] !== undefined || inputs.session !== undefined)) {
      if (!spec['sev-guest']) throw QmpError.generic("'sev-inputs' needs a 'sev-guest' object");
      dir = mkdtempSync(join(tmpdir(), 'sevd-launch-'));
      const put = (member: 'dh-cert-file' | 'session-file', text: string) => {
        const file = join(dir!, member);
        writeFileSync(file, text, { mode: 0o600, flag: 'wx' });
        own.add(file);
        spec['sev-guest'] = { ...spec['sev-guest']!, [member]: file };
      };
      if (inputs['dh-cert'] !== undefined) put('dh-cert-file', inputs['dh-cert']);
      if (inputs.session !== undefined) put('session-file', inputs.session);
    }
    const files: FileAccess = {
      origin: 'launch',
      resolve: (kind, name) => (kind === 'inputs' && own.has(name) ? name : confined.resolve(kind, name)),
      openForRead: (kind, name) =>
        kind === 'inputs' && own.has(name) ? openSync(name, constants.O_RDONLY | constants.O_NOFOLLOW) : confined.openForRead(kind, name),
    };
    try {
      const vm = await this.registry.add(spec, { persist: false, paths: files });
      vm.vcpuThread = thread;
      return vm;
    } finally {
      // The launch flow has read them (LAUNCH_START): nothing of them stays on disk.
      if (dir) rmSync(dir, { recursive: true, force: true });
    }
  }

  private handOver(conn: Connection, vm: Vm): void {
    if (conn.closed) return;
    conn.session.detach();
    conn.session = new QmpSession(vm.guest.monitor, conn.sink, { access: { origin: 'launch', readOnly: false } });
  }

  private accept(socket: net.Socket, bySession: WeakMap<QmpSession, Connection>): void {
    const release = this.host.budget.acquire('unix', this.connections.size);
    if (typeof release === 'string') {
      socket.destroy();
      return;
    }
    const sink: SessionSink = {
      write: (data) => {
        if (!socket.destroyed) socket.write(data);
      },
      close: () => {
        socket.end();
        setTimeout(() => socket.destroy(), 1000).unref();
      },
      pause: () => socket.pause(),
      resume: () => socket.resume(),
    };
    const conn: Connection = { socket, sink, vm: null, adding: false, closed: false, session: undefined as unknown as QmpSession };
    conn.session = new QmpSession(this.monitor, sink, { access: { origin: 'launch', readOnly: false } });
    bySession.set(conn.session, conn);
    this.connections.add(conn);
    socket.on('data', (chunk: Buffer) => conn.session.receive(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      conn.closed = true;
      release();
      conn.session.detach();
      this.connections.delete(conn);
      const vm = conn.vm;
      conn.vm = null;
      // The guest dies with its launcher (context, ASID, memory, sockets).
      if (vm && this.registry.get(vm.name) === vm) {
        this.registry.del(vm.name).catch((e) => this.host.log.warn?.({ guest: vm.name, error: (e as Error).message }, 'launcher guest not deleted'));
      }
    });
  }

  async close(): Promise<void> {
    for (const c of this.connections) c.socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await import('node:fs/promises').then((fs) => fs.unlink(this.path)).catch(() => undefined);
  }
}
