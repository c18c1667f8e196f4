/**
 * The hooks the daemon installs on each monitor (server/qmp/ knows neither faults nor
 * metrics): commands run in the monitor's fault scope, replies meet injected monitor
 * faults, and every command and refusal counts in the daemon's own metrics.
 */
import type { MonitorHooks } from '../qmp/monitor.js';
import type { FaultRegistry } from '../faults/fault-registry.js';
import type { Metrics } from '../observability/metrics.js';

export function monitorHooks(kind: 'control' | 'guest' | 'agent' | 'launch', owner: string | null, faults: FaultRegistry, metrics: Metrics): MonitorHooks {
  return {
    around: (run) => faults.scopes.inCommand(owner, run),
    // Monitor faults are about the control and guest monitors (the guest agent is software
    // inside the guest; the launch socket is no monitor §13 names), and never hold the reply
    // to the inject-fault that armed them.
    ...(kind === 'agent' || kind === 'launch' ? {} : { beforeReply: (command: string | undefined) => (command === 'inject-fault' ? undefined : faults.monitor(owner)) }),
    onResponse: (command, result, seconds) => metrics.command(kind, command, result, seconds),
    onRefusal: (reason) => metrics.refusals.inc({ reason }),
  };
}
