/**
 * The guest registry: names are unique; a guest exists only once its launch flow ran.
 * Definitions added over QMP are persisted before the guest appears and forgotten before
 * it goes: when the write fails, the command fails and nothing changes.
 */
import { QmpError } from '../errors/qmp-error.js';
import { normalizeGuestSpec } from './guest-spec.js';
import type { FileAccess } from '../confinement/paths.js';
import { Vm } from './vm.js';
import type { HostContext } from './host.js';
import type { Args } from '../dispatch/dispatcher.js';
import type { GuestStore } from './guest-store.js';

export interface AddOptions {
  /** Remember the definition across restarts (guest-add). */
  persist?: boolean;
  /** How the spec's files are named and opened (confinement, docs/interface.md §14). */
  paths?: FileAccess;
}

export class GuestRegistry {
  private readonly vms = new Map<string, Vm>();
  /** Names being created, so two concurrent guest-adds of one name cannot both win. */
  private readonly reserved = new Set<string>();

  /** Guests added over QMP are remembered here (config guests come from the config). */
  store: GuestStore | null = null;

  constructor(private readonly host: HostContext) {}

  get size(): number {
    return this.vms.size;
  }

  list(): Vm[] {
    return [...this.vms.values()];
  }

  get(name: string): Vm | undefined {
    return this.vms.get(name);
  }

  async add(args: Args, opts: AddOptions = {}): Promise<Vm> {
    // The firmware works for this guest from here on (fault matching; delays reach the reply).
    return this.host.faults.scopes.inGuest(String(args['name']), () => this.create(args, opts));
  }

  private async create(args: Args, opts: AddOptions): Promise<Vm> {
    const { spec, persistable } = await normalizeGuestSpec(args, opts.paths);
    const name = spec.config.name;
    if (this.vms.has(name) || this.reserved.has(name)) throw QmpError.generic(`Guest '${name}' already exists`);
    this.reserved.add(name);
    try {
      // The constructor only checks (QEMU's startup checks); open() creates.
      const vm = new Vm(spec, this.host, (v) => this.exited(v));
      const store = opts.persist ? this.store : null;
      store?.put(persistable);
      try {
        await vm.open();
      } catch (e) {
        this.forget(name);
        throw e;
      }
      this.vms.set(name, vm);
      return vm;
    } finally {
      this.reserved.delete(name);
    }
  }

  /** The guest went away by itself (quit, poweroff): its definition goes with it. */
  private exited(vm: Vm): void {
    if (this.vms.get(vm.name) !== vm) return;
    this.vms.delete(vm.name);
    this.forget(vm.name);
    void vm.close();
  }

  /** Best effort where the guest is already gone: a failed write is logged, the definition stays. */
  private forget(name: string): void {
    try {
      this.store?.remove(name);
    } catch (e) {
      this.host.log.warn?.({ guest: name, error: (e as Error).message }, 'guest definition could not be forgotten');
    }
  }

  /** `forget`: also drop a remembered definition (guest-del); a daemon shutdown keeps them. */
  del(name: string, reason: 'host-qmp-quit' | 'host-signal' = 'host-signal', forget = true): Promise<void> {
    return this.host.faults.scopes.inGuest(name, () => this.destroy(name, reason, forget));
  }

  private async destroy(name: string, reason: 'host-qmp-quit' | 'host-signal', forget: boolean): Promise<void> {
    const vm = this.vms.get(name);
    if (!vm) throw QmpError.generic(`Guest '${name}' not found`);
    // Forgotten on disk first: if that fails, the guest stays as it was.
    if (forget) this.store?.remove(name);
    // Out of the registry next, so the guest's own exit hook finds nothing left to do.
    this.vms.delete(name);
    vm.guest.terminate(reason);
    await vm.close();
  }

  async delAll(reason: 'host-qmp-quit' | 'host-signal'): Promise<void> {
    await Promise.all([...this.vms.keys()].map((n) => this.del(n, reason, false)));
  }
}
