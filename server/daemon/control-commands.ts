/** Handlers of the control monitor (docs/interface.md §5). */
import type { Handler, Handlers } from '../dispatch/dispatcher.js';
import { commonHandlers } from '../dispatch/common-commands.js';
import { sevPlatformHandlers, type SevHostContext } from './sev-platform-commands.js';
import type { GuestRegistry } from './registry.js';
import type { PathPolicy } from '../confinement/paths.js';
import type { FaultRegistry } from '../faults/fault-registry.js';
import { QmpError } from '../errors/qmp-error.js';
import { VMSA_REGION } from '../guest/layout.js';

export interface ControlContext extends SevHostContext {
  registry: GuestRegistry;
  paths: PathPolicy;
  faults: FaultRegistry;
  /** The host's ASID range (CPUID 0x8000001F ECX/EDX). */
  asids: { max: number; minSev: number };
  requestShutdown(reason: 'host-qmp-quit'): void;
}

export function controlHandlers(): Handlers<ControlContext> {
  return {
    ...commonHandlers<ControlContext>(),
    ...sevPlatformHandlers<ControlContext>(),
    quit: (_a, ctx) => {
      setImmediate(() => ctx.requestShutdown('host-qmp-quit'));
    },
    'guest-add': async (args, { registry, paths, session }) => {
      await registry.add(args, { persist: true, paths: paths.access(session.access.origin) });
    },
    'guest-del': async (args, { registry }) => {
      await registry.del(args['name']);
    },
    'inject-fault': (args, { faults }) => ({ id: faults.add(args) }),
    'query-faults': (_a, { faults }) => faults.list(),
    'clear-faults': (args, { faults }) => faults.clear(args['id']),
    'query-guest-memory': (args, { registry }) => {
      const vm = registry.get(args['name']);
      if (!vm) throw QmpError.generic(`Guest '${args['name']}' not found`);
      const mem = vm.guest.memory;
      const end = Math.max(...mem.regions.map((r) => r.base + r.size));
      // uint64: past 2^53 the visitor gives a bigint, which is past any guest memory anyway.
      const gpa = Number(args['gpa'] ?? 0);
      return mem.pageRuns(gpa, Number(args['size'] ?? end - gpa), VMSA_REGION);
    },
    'query-asids': (_a, { registry, asids }) => {
      const inUse = registry.list().flatMap((vm) => (vm.sev?.asid != null ? [{ name: vm.name, asid: vm.sev.asid }] : []));
      return { 'max-asid': asids.max, 'min-sev-asid': asids.minSev, 'in-use': inUse, free: asids.max - inUse.length };
    },
    'query-guests': (_a, { registry }) =>
      registry.list().map((vm) => ({
        name: vm.name,
        status: vm.guest.runState,
        running: vm.guest.running,
        'sev-state': vm.sev?.state ?? null,
        'qmp-path': vm.qmpPath,
        'qga-path': vm.qgaPath,
      })),
  };
}
