/**
 * A VM as the daemon hosts it: the guest, its QMP monitor and guest agent, and the Unix
 * sockets they listen on. Creation is all-or-nothing: a failure leaves no socket behind.
 */
import { join } from 'node:path';
import { Guest } from '../guest/guest.js';
import { guestHandlers, type GuestContext, type GuestVmm } from '../guest/commands.js';
import { agentHandlers, type AgentContext, type GuestMemoryView } from '../guest/agent-commands.js';
import { Dispatcher } from '../dispatch/dispatcher.js';
import { compiledSchema } from '../dispatch/compiled-schema.js';
import { Monitor } from '../qmp/monitor.js';
import { UnixListener } from '../transport/unix-socket.js';
import { schema } from '../../schema/index.js';
import type { NormalizedSpec } from './guest-spec.js';
import type { HostContext } from './host.js';
import { sevCapabilitiesHandler, type SevHostContext } from './sev-platform-commands.js';

type VmGuestContext = GuestContext & SevHostContext;
let guestDispatcher: Dispatcher<VmGuestContext> | undefined;
let agentDispatcher: Dispatcher<AgentContext> | undefined;

export class Vm {
  readonly guest: Guest;
  readonly qmpPath: string;
  readonly qgaPath: string;
  private listeners: UnixListener[] = [];

  constructor(readonly spec: NormalizedSpec, private readonly host: HostContext, onExit: (vm: Vm) => void) {
    this.guest = new Guest(spec.config, { onExit: () => onExit(this) });
    this.qmpPath = join(host.config.runDir, 'guests', `${spec.config.name}.qmp`);
    this.qgaPath = join(host.config.runDir, 'guests', `${spec.config.name}.qga`);
    const version = host.version;
    guestDispatcher ??= new Dispatcher<VmGuestContext>(compiledSchema(schema, 'guest', version), {
      ...guestHandlers(),
      'query-sev-capabilities': sevCapabilitiesHandler<VmGuestContext>(),
    });
    agentDispatcher ??= new Dispatcher(compiledSchema(schema, 'agent', version), agentHandlers());
    const vmm: GuestVmm = { beforeFirstRun: () => undefined, sevInfoLines: () => undefined };
    const guest = this.guest;
    const view: GuestMemoryView = {
      read: (gpa, len) => guest.guestRead(gpa, len),
      write: (gpa, data) => guest.guestWrite(gpa, data),
      setPrivate: () => undefined,
      secrets: () => [],
    };
    const limits = host.sessionLimits;
    guest.monitor = new Monitor({
      kind: 'guest', dispatcher: guestDispatcher, context: { guest, vmm, sev: host.sev, cbitpos: host.config.platform.cbitpos }, version, packageName: host.packageName, limits,
    });
    guest.agent = new Monitor({
      kind: 'agent', dispatcher: agentDispatcher, context: { guest, view }, version, packageName: host.packageName, limits,
    });
  }

  get name(): string {
    return this.guest.name;
  }

  async open(): Promise<void> {
    const mode = this.host.config.socketMode;
    try {
      this.listeners.push(await UnixListener.listen(this.qmpPath, this.guest.monitor, { mode }));
      this.listeners.push(await UnixListener.listen(this.qgaPath, this.guest.agent, { mode, agent: true }));
    } catch (e) {
      await this.close();
      throw e;
    }
    this.guest.start();
  }

  /** Closes the sockets and every connection to them. */
  async close(): Promise<void> {
    const ls = this.listeners;
    this.listeners = [];
    await Promise.all(ls.map((l) => l.close()));
  }
}
