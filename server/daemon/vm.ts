/**
 * A VM as the daemon hosts it: the guest, its SEV state, its QMP monitor and guest agent,
 * and the Unix sockets they listen on. Creation is all-or-nothing: a failure leaves no
 * socket, firmware context or ASID behind.
 */
import { join } from 'node:path';
import { Guest } from '../guest/guest.js';
import { guestHandlers, type GuestContext, type GuestVmm } from '../guest/commands.js';
import { agentHandlers, type AgentContext, type GuestMemoryView } from '../guest/agent-commands.js';
import { parseSecretTable } from '../../abi/efi-secret-table.js';
import { Dispatcher } from '../dispatch/dispatcher.js';
import type { Version } from '../dispatch/version.js';
import { commonHandlers } from '../dispatch/common-commands.js';
import { compiledSchema } from '../dispatch/compiled-schema.js';
import { atLeast } from '../dispatch/version.js';
import { Monitor } from '../qmp/monitor.js';
import { UnixListener } from '../transport/unix-socket.js';
import { schema } from '../../schema/index.js';
import { createConfidentialGuest, type ConfidentialGuest } from '../sev/guest-kinds.js';
import { SnpGuestDriver } from '../guest/snp-guest-driver.js';
import { kvmCall, launchWording, SevFailure } from '../sev/qemu-errors.js';
import { QmpError } from '../errors/qmp-error.js';
import { sevGuestHandlers, type SevGuestContext } from '../sev/sev-commands.js';
import { VmMigration } from '../migration/vm-migration.js';
import { migrationHandlers, type MigrationContext } from '../migration/commands.js';
import type { NormalizedSpec } from './guest-spec.js';
import type { HostContext } from './host.js';
import { sevCapabilitiesHandler, type SevHostContext } from './sev-platform-commands.js';
import { monitorHooks } from './monitor-hooks.js';
import { MachineView } from '../guest/machine-view.js';
import { machineHandlers, type MachineContext } from '../guest/machine-commands.js';

type VmGuestContext = GuestContext & SevHostContext & SevGuestContext & MigrationContext & MachineContext;

/** The command tables of every guest's monitor and agent, for one QEMU version. */
export interface VmDispatchers {
  guest: Dispatcher<VmGuestContext>;
  agent: Dispatcher<AgentContext>;
}

/** Built once per daemon (its QEMU version), shared by its guests. */
export function vmDispatchers(version: Version): VmDispatchers {
  return {
    guest: new Dispatcher<VmGuestContext>(compiledSchema(schema, 'guest', version), {
      ...commonHandlers<VmGuestContext>(),
      ...guestHandlers(),
      ...sevGuestHandlers<VmGuestContext>(),
      ...migrationHandlers<VmGuestContext>(),
      ...machineHandlers<VmGuestContext>(),
      'query-sev-capabilities': sevCapabilitiesHandler<VmGuestContext>(),
    }),
    agent: new Dispatcher(compiledSchema(schema, 'agent', version), agentHandlers()),
  };
}

export class Vm {
  readonly guest: Guest;
  readonly sev: ConfidentialGuest | null;
  readonly qmpPath: string;
  readonly qgaPath: string;
  private listeners: UnixListener[] = [];
  readonly migration: VmMigration;
  /** The pid libvirt sees as every vCPU thread: the launcher's for a launcher-made guest (§15). */
  vcpuThread = process.pid;

  constructor(readonly spec: NormalizedSpec, private readonly host: HostContext, onExit: (vm: Vm) => void) {
    const sevHost = host.sevHost;
    this.guest = new Guest(spec.config, { onExit: () => onExit(this) }, spec.sev ? sevHost.memory : null);
    // QEMU's startup checks run before anything is created.
    this.sev = spec.sev ? createConfidentialGuest(this.guest, spec.sev, sevHost) : null;
    this.qmpPath = join(host.config.runDir, 'guests', `${spec.config.name}.qmp`);
    this.qgaPath = join(host.config.runDir, 'guests', `${spec.config.name}.qga`);
    const version = host.version;
    const guest = this.guest;
    const sev = this.sev;
    this.migration = new VmMigration(guest, sev, () => {
      const { pdh, certs } = host.sev.pdhCertExport();
      const root = host.sev.platform.emulatedRoot;
      return { pdh, platCerts: certs, amdCerts: Buffer.concat([root.ask, root.ark]) };
    }, atLeast(version, '9.0.0'), host.paths, host.faults, host.metrics);
    const vmm: GuestVmm = {
      beforeFirstRun: () => sev?.beforeFirstRun(),
      // A context that was sent away never runs again here (AMD's SEV live-migration series: the source's context is gone after SEND_FINISH).
      afterRun: () => {
        if (sev?.sentAway) setImmediate(() => guest.internalError());
      },
      sevInfoLines: () => sev?.infoLines(atLeast(version, '9.1.0')),
      hostRead: (gpa, len) => (sev ? sev.hostRead(gpa, len) : guest.memory.read(gpa, len)),
    };
    const view: GuestMemoryView = {
      read: (gpa, len) => guest.memory.guestRead(gpa, len),
      write: (gpa, data) => guest.memory.guestWrite(gpa, data),
      // Without SEV there is no C-bit to flip: all memory stays shared.
      setPrivate: (gpa, size, priv) => {
        if (sev) guest.memory.setPrivate(gpa, size, priv);
      },
      secrets: () => {
        const area = sev?.secretArea();
        if (!area || !guest.memory.regionOf(area.base, area.size)) return [];
        return parseSecretTable(guest.memory.guestRead(area.base, area.size)).map((e) => ({ guid: e.guid, data: e.data.toString('base64') }));
      },
    };
    const limits = host.sessionLimits;
    guest.monitor = new Monitor({
      kind: 'guest',
      dispatcher: host.dispatchers.guest,
      context: {
        guest, vmm, sev: host.sev, cbitpos: host.config.platform.cbitpos, sevGuest: sev, migration: this.migration, paths: host.paths,
        machine: new MachineView(guest, `unix:${this.qmpPath},server=on`, host.config.platform.generation, () => this.vcpuThread),
      },
      version,
      packageName: host.packageName,
      limits,
      log: host.log,
      owner: spec.config.name,
      hooks: monitorHooks('guest', spec.config.name, host.faults, host.metrics),
    });
    guest.agent = new Monitor({
      kind: 'agent', dispatcher: host.dispatchers.agent, context: { guest, view, sevStatus: () => sev?.guestStatus() ?? { sev: false, es: false, snp: false, features: 0 }, snp: this.snpDriver() },
      version, packageName: host.packageName, limits, log: host.log, owner: spec.config.name,
      hooks: monitorHooks('agent', spec.config.name, host.faults, host.metrics),
    });
  }

  /** An SNP guest's sev-guest driver: its secrets page as it reads it, messages through KVM to the firmware. */
  private snpDriver(): { driver: SnpGuestDriver; certTable: Buffer | null } | null {
    const snp = this.sev;
    if (snp?.kind !== 'sev-snp') return null;
    const mem = this.guest.memory;
    const driver = new SnpGuestDriver({
      secretsPage: () => {
        if (snp.secretsGpa === null) throw QmpError.generic('SEV-SNP: the firmware has no secrets page');
        return mem.guestRead(snp.secretsGpa, 4096);
      },
      exchange: (request) => {
        return kvmCall(() => snp.guestRequest(request), launchWording(SevFailure.guestRequest));
      },
    });
    return { driver, certTable: snp.certTable };
  }

  get name(): string {
    return this.guest.name;
  }

  /** Machine init (the SEV launch flow), then the sockets, then the guest starts unless paused. */
  async open(): Promise<void> {
    // An incoming guest runs no launch flow: its context comes with RECEIVE_START.
    if (!this.spec.config.incoming) this.sev?.launch();
    const owner = this.host.socketOwner;
    const opened = await Promise.allSettled([
      UnixListener.listen(this.qmpPath, this.guest.monitor, { ...owner, budget: this.host.budget }),
      UnixListener.listen(this.qgaPath, this.guest.agent, { ...owner, agent: true, budget: this.host.budget }),
    ]);
    for (const r of opened) if (r.status === 'fulfilled') this.listeners.push(r.value);
    const failed = opened.find((r) => r.status === 'rejected');
    if (failed) {
      await this.close();
      throw (failed as PromiseRejectedResult).reason;
    }
    try {
      this.guest.start(() => this.sev?.beforeFirstRun());
    } catch (e) {
      // A launch that fails on its first run (an SNP ID block refused) leaves nothing.
      await this.close();
      throw e;
    }
    const incoming = this.spec.config.incoming;
    if (incoming && incoming !== 'defer') {
      try {
        // Checked with the rest of the spec; bound or opened here as its client's again, so
        // that a directory swapped since the check leads nowhere outside.
        await this.migration.startIncoming(incoming, false, this.spec.config.origin);
      } catch (e) {
        await this.close();
        throw e;
      }
    }
  }

  /** Called once the VM is closed (the launch socket ends its launcher's connection then). */
  readonly closeHooks: (() => void)[] = [];

  /** Closes the sockets and every connection to them; the firmware context is decommissioned. */
  async close(): Promise<void> {
    for (const hook of this.closeHooks.splice(0)) hook();
    this.migration.close();
    this.sev?.destroy();
    const ls = this.listeners;
    this.listeners = [];
    await Promise.all(ls.map((l) => l.close()));
  }
}
