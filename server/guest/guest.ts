/**
 * One emulated VM: its run state machine (QEMU's runstate rules and events), its
 * memory, and the monitors that drive it. Transports attach to `monitor` and `agent`.
 */
import { GuestMemory } from '../memory/guest-memory.js';
import type { MemoryController } from '../memory/memory-controller.js';
import type { Monitor } from '../qmp/monitor.js';
import type { OutValue } from '../qmp/json/writer.js';
import { QmpError } from '../errors/qmp-error.js';
import { machineLayout } from './layout.js';
import { parseOvmfTable, type OvmfEntry } from '../../abi/ovmf-table.js';
import type { Origin } from '../confinement/paths.js';

export type RunState =
  | 'debug' | 'inmigrate' | 'internal-error' | 'io-error' | 'paused' | 'postmigrate' | 'prelaunch'
  | 'finish-migrate' | 'restore-vm' | 'running' | 'save-vm' | 'shutdown' | 'suspended' | 'watchdog'
  | 'guest-panicked' | 'colo';

export interface GuestConfig {
  name: string;
  memoryBytes: number;
  firmware: Buffer;
  firmwarePath: string | null;
  kernel: string | null;
  initrd: string | null;
  append: string | null;
  paused: boolean;
  incoming: string | null;
  /** Who defined the guest: its migration URIs are opened as that client's (the files are read already). */
  origin: Origin;
  /** vCPUs (`smp`). */
  smp: number;
  /** Frames set aside for VMSAs (SEV-ES: one per vCPU; otherwise 0). */
  vmsaPages: number;
  /** The vCPU model (a QEMU x86 CPU model name, or `host`). */
  cpu: string;
  /** The firmware flash's block-node names (libvirt's `-blockdev`); null: sevd's defaults. */
  firmwareNodes: { format: string; storage: string } | null;
  /** The firmware file's bytes on disk when it was read (its block node's actual-size). */
  firmwareAllocated: number;
}

export interface GuestEvents {
  /** The guest is gone (quit, or powered off for good): the daemon removes it. */
  onExit?: (guest: Guest) => void;
}

export class Guest {
  readonly name: string;
  readonly uuid = '00000000-0000-0000-0000-000000000000';
  readonly memory: GuestMemory;
  readonly ovmfEntries: OvmfEntry[];
  private state: RunState;
  /** QEMU's autostart: run once an incoming migration completes. */
  private autostart: boolean;
  monitor!: Monitor<any>;
  agent!: Monitor<any>;
  /** HMP's remembered xp format and size (QEMU keeps them per monitor). */
  hmpLast = { format: 'x', size: 4 };

  /** `mc` is the host's memory controller for an SEV guest, null for a plain one. */
  constructor(readonly config: GuestConfig, private readonly events: GuestEvents = {}, mc: MemoryController | null = null) {
    this.name = config.name;
    this.memory = new GuestMemory(machineLayout(config.memoryBytes, config.firmware.length, config.vmsaPages), mc);
    const table = parseOvmfTable(config.firmware);
    this.ovmfEntries = 'entries' in table ? table.entries : [];
    this.autostart = !config.paused;
    if (config.incoming) this.state = 'inmigrate';
    else this.state = 'prelaunch';
    // Machine init: the firmware flash is mapped so that it ends at 4 GiB.
    const flash = this.memory.regions.find((r) => r.name === 'system.flash0');
    if (flash) this.memory.write(flash.base, config.firmware);
  }

  /** Finishes start-up: a guest that is not paused (and not incoming) starts running. */
  start(beforeRun?: () => void): void {
    if (this.state === 'prelaunch' && this.autostart) {
      beforeRun?.();
      this.setState('running');
    }
  }

  get runState(): RunState {
    return this.state;
  }

  get running(): boolean {
    return this.state === 'running';
  }

  private setState(s: RunState): void {
    this.state = s;
  }

  private emit(event: string, data?: OutValue): void {
    this.monitor?.emitEvent(event, data);
  }

  /** QMP stop (QMP reference, stop). */
  stop(): void {
    if (this.state === 'inmigrate') {
      this.autostart = false;
      return;
    }
    if (this.state === 'running' || this.state === 'suspended') {
      this.setState('paused');
      this.emit('STOP');
    }
  }

  /** QMP cont; `beforeRun` is the VMM's first-run hook (LAUNCH_FINISH for SEV guests). */
  cont(beforeRun?: () => void, afterRun?: () => void): void {
    if (this.state === 'internal-error' || this.state === 'shutdown' || this.state === 'guest-panicked') {
      throw QmpError.generic('Resetting the Virtual Machine is required');
    }
    if (this.state === 'finish-migrate') throw QmpError.generic('Migration is not finalized yet');
    if (this.state === 'suspended') return;
    if (this.state === 'inmigrate') {
      this.autostart = true;
      return;
    }
    if (this.state === 'running') return;
    beforeRun?.();
    this.setState('running');
    this.emit('RESUME');
    afterRun?.();
  }

  // ---- migration (QEMU qapi/migration.json migrate, migrate-incoming; AMD's SEV migration series) ----

  /** Source, final phase: a running guest stops in finish-migrate. Returns the state to go back to. */
  enterFinishMigrate(): RunState {
    const before = this.state;
    const live = before === 'running' || before === 'suspended';
    this.setState('finish-migrate');
    if (live) this.emit('STOP');
    return before;
  }

  /** Source after a completed migration. */
  enterPostmigrate(): void {
    this.setState('postmigrate');
  }

  /** Source after a failed or cancelled migration: the state before it, running guests resume. */
  leaveMigration(before: RunState): void {
    if (this.state !== 'finish-migrate') return;
    this.setState(before);
    if (before === 'running') this.emit('RESUME');
  }

  /** Destination: the stream is loaded; the guest runs if autostart is set, else it is paused. */
  incomingDone(beforeRun: () => void): void {
    if (this.state !== 'inmigrate') return;
    if (this.autostart) {
      beforeRun();
      this.setState('running');
      this.emit('RESUME');
    } else {
      this.setState('paused');
    }
  }

  /** The guest cannot go on (a context that was sent away): STOP, internal-error. */
  internalError(): void {
    const live = this.state === 'running';
    this.setState('internal-error');
    if (live) this.emit('STOP');
  }

  systemReset(): void {
    this.emit('RESET', { guest: false, reason: 'host-qmp-system-reset' });
  }

  /** ACPI power button: a running guest honours it and powers off. */
  systemPowerdown(): void {
    this.emit('POWERDOWN');
    if (this.state !== 'running') return;
    setImmediate(() => {
      if (this.state !== 'running') return;
      this.setState('shutdown');
      this.emit('SHUTDOWN', { guest: true, reason: 'guest-shutdown' });
    });
  }

  /** The guest ends (QMP quit, guest-del, daemon shutdown). */
  terminate(reason: 'host-qmp-quit' | 'host-signal'): void {
    this.emit('SHUTDOWN', { guest: false, reason });
    this.events.onExit?.(this);
  }

}
