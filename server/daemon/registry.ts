/** The guest registry: names are unique; a guest exists only once its launch flow ran. */
import { QmpError } from '../qmp/errors.js';
import { normalizeGuestSpec } from './guest-spec.js';
import { Vm } from './vm.js';
import type { HostContext } from './host.js';
import type { Args } from '../dispatch/dispatcher.js';

export class GuestRegistry {
  private readonly vms = new Map<string, Vm>();
  /** Names being created, so two concurrent guest-adds of one name cannot both win. */
  private readonly reserved = new Set<string>();

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

  async add(args: Args): Promise<Vm> {
    const spec = await normalizeGuestSpec(args);
    const name = spec.config.name;
    if (this.vms.has(name) || this.reserved.has(name)) throw QmpError.generic(`Guest '${name}' already exists`);
    this.reserved.add(name);
    try {
      const vm = new Vm(spec, this.host, (v) => void this.remove(v));
      await vm.open();
      this.vms.set(name, vm);
      return vm;
    } finally {
      this.reserved.delete(name);
    }
  }

  private async remove(vm: Vm): Promise<void> {
    if (this.vms.get(vm.name) !== vm) return;
    this.vms.delete(vm.name);
    await vm.close();
  }

  async del(name: string, reason: 'host-qmp-quit' | 'host-signal' = 'host-signal'): Promise<void> {
    const vm = this.vms.get(name);
    if (!vm) throw QmpError.generic(`Guest '${name}' not found`);
    vm.guest.terminate(reason);
    await this.remove(vm);
  }

  async delAll(reason: 'host-qmp-quit' | 'host-signal'): Promise<void> {
    await Promise.all([...this.vms.keys()].map((n) => this.del(n, reason)));
  }
}
