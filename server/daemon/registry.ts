/** The guest registry: names are unique; a guest exists only once its launch flow ran. */
import { QmpError } from '../qmp/errors.js';
import { normalizeGuestSpec } from './guest-spec.js';
import { Vm } from './vm.js';
import type { HostContext } from './host.js';
import type { Args } from '../dispatch/dispatcher.js';
import type { GuestStore } from './guest-store.js';

export class GuestRegistry {
  private readonly vms = new Map<string, Vm>();
  /** Names being created, so two concurrent guest-adds of one name cannot both win. */
  private readonly reserved = new Set<string>();

  /** Guests added over QMP are remembered here (config guests come from the config). */
  store: GuestStore | null = null;
  private readonly persisted = new Set<string>();

  constructor(private readonly host: HostContext) {}

  /** A restored guest: its definition stays remembered (guest-del forgets it). */
  markPersisted(name: string): void {
    this.persisted.add(name);
  }

  get size(): number {
    return this.vms.size;
  }

  list(): Vm[] {
    return [...this.vms.values()];
  }

  get(name: string): Vm | undefined {
    return this.vms.get(name);
  }

  async add(args: Args, opts: { persist?: boolean } = {}): Promise<Vm> {
    const spec = await normalizeGuestSpec(args);
    const name = spec.config.name;
    if (this.vms.has(name) || this.reserved.has(name)) throw QmpError.generic(`Guest '${name}' already exists`);
    this.reserved.add(name);
    try {
      const vm = new Vm(spec, this.host, (v) => void this.remove(v));
      await vm.open();
      this.vms.set(name, vm);
      if (opts.persist && this.store) {
        this.store.put(args as Record<string, unknown>);
        this.persisted.add(name);
      }
      return vm;
    } finally {
      this.reserved.delete(name);
    }
  }

  private async remove(vm: Vm, forget = true): Promise<void> {
    if (this.vms.get(vm.name) !== vm) return;
    this.vms.delete(vm.name);
    if (forget && this.persisted.delete(vm.name)) this.store?.remove(vm.name);
    await vm.close();
  }

  /** `forget`: also drop a remembered definition (guest-del); a daemon shutdown keeps them. */
  async del(name: string, reason: 'host-qmp-quit' | 'host-signal' = 'host-signal', forget = true): Promise<void> {
    const vm = this.vms.get(name);
    if (!vm) throw QmpError.generic(`Guest '${name}' not found`);
    // Out of the registry first, so the guest's own exit hook finds nothing left to do.
    this.vms.delete(name);
    if (forget && this.persisted.delete(name)) this.store?.remove(name);
    vm.guest.terminate(reason);
    await vm.close();
  }

  async delAll(reason: 'host-qmp-quit' | 'host-signal'): Promise<void> {
    await Promise.all([...this.vms.keys()].map((n) => this.del(n, reason, false)));
  }
}
