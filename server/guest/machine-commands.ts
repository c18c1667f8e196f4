/** Handlers of the machine-view commands libvirt sends between start and `cont` (docs/interface.md §15). */
import type { Handlers } from '../dispatch/dispatcher.js';
import type { MachineView } from './machine-view.js';

export interface MachineContext {
  machine: MachineView;
}

export function machineHandlers<C extends MachineContext>(): Handlers<C> {
  return {
    'query-chardev': (_a, { machine }) => machine.chardevs(),
    'query-hotpluggable-cpus': (_a, { machine }) => machine.hotpluggableCpus(),
    'query-cpus-fast': (_a, { machine }) => machine.cpusFast(),
    'qom-list': (a, { machine }) => machine.qomList(a.path),
    'qom-get': (a, { machine }) => machine.qomGet(a.path, a.property),
    // No -object iothread: libvirt's domains here have none.
    'query-iothreads': () => [],
    // A target past 2^53 (a bigint) is clamped to the RAM size all the same.
    balloon: (a, { machine }) => machine.balloon(Number(a.value)),
    'query-balloon': (_a, { machine }) => machine.balloonInfo(),
    'query-named-block-nodes': (_a, { machine }) => machine.namedBlockNodes(),
    'query-block': (_a, { machine }) => machine.block(),
    // Recorded only: no guest code runs in sevd that could reboot, panic or trip a watchdog.
    'set-action': (a, { machine }) => {
      Object.assign(machine.actions, a);
    },
  };
}
