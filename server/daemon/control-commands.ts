/** Handlers of the control monitor (interface.md §5). */
import type { Handler } from '../dispatch/dispatcher.js';
import { commonHandlers } from '../dispatch/common-commands.js';
import { sevPlatformHandlers, type SevHostContext } from './sev-platform-commands.js';
import type { GuestRegistry } from './registry.js';
import type { PathPolicy } from '../confinement/paths.js';
import type { FaultRegistry } from '../faults/fault-registry.js';

export interface ControlContext extends SevHostContext {
  registry: GuestRegistry;
  paths: PathPolicy;
  faults: FaultRegistry;
  requestShutdown(reason: 'host-qmp-quit'): void;
}

export function controlHandlers(): Record<string, Handler<ControlContext>> {
  return {
    ...commonHandlers<ControlContext>(),
    ...sevPlatformHandlers<ControlContext>(),
    quit: (_a, ctx) => {
      setImmediate(() => ctx.requestShutdown('host-qmp-quit'));
    },
    'guest-add': async (args, { registry, paths, session }) => {
      await registry.add(args, { persist: true, paths: (kind, name) => paths.resolve(kind, name, session.access.origin) });
    },
    'guest-del': async (args, { registry }) => {
      await registry.del(args['name'] as string);
    },
    'inject-fault': (args, { faults }) => ({ id: faults.add(args) }),
    'query-faults': (_a, { faults }) => faults.list(),
    'clear-faults': (args, { faults }) => faults.clear(args['id'] as number | undefined),
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
