/**
 * The firmware boundary: every firmware command the daemon issues passes here, where it is
 * counted by name and status and where an injected fault (interface §13) replaces its
 * outcome, so everything above (KVM layer, QEMU's texts, replies, events, metrics, state
 * left behind) reacts as to a genuine failure. The firmware code itself is untouched.
 */
import { FirmwareError, type SevCommand } from '../firmware/status.js';
import type { Metrics } from './metrics.js';
import type { FaultRegistry } from '../faults/fault-registry.js';
import { currentScope } from '../faults/scope.js';

const snake = (m: string) => m.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();

export interface CountOptions {
  /** Command names that snake case does not give (PEK_CSR, DF_FLUSH, …). */
  rename?: Record<string, string>;
  /** Batch methods: the argument whose length is the number of commands the call performs. */
  perItem?: Record<string, number>;
  /** Where each command counts (the daemon's metrics). */
  metrics: Metrics;
  /** Armed faults to consult before each command. */
  faults?: FaultRegistry;
  /** The guest a firmware handle belongs to, for commands issued outside a guest's scope. */
  guestOfHandle?: (handle: number) => string | null;
}


/** Wraps the named methods of `obj` so each call is counted as SUCCESS or its firmware status. */
export function countFirmwareCommands<T extends object>(obj: T, methods: readonly string[], opts: CountOptions): T {
  const counted = (command: string, status: string, by: number) =>
    opts.metrics.firmware.incKey(`${command}\0${status}`, () => ({ command, status }), by);
  const wrapped = new Map<string, unknown>();
  for (const name of methods) {
    const v = (obj as Record<string, unknown>)[name];
    if (typeof v !== 'function') continue;
    const command = opts.rename?.[name] ?? snake(name);
    const itemsArg = opts.perItem?.[name];
    wrapped.set(name, function (this: unknown, ...args: unknown[]) {
      const faults = opts.faults;
      if (faults) {
        const scope = currentScope();
        const guest = scope?.guest ?? (typeof args[0] === 'number' ? opts.guestOfHandle?.(args[0]) ?? null : null);
        const f = faults.firmware(command as SevCommand, guest);
        if (f) {
          // The delay is served asynchronously by whoever waits for this command (its QMP reply).
          if (scope) scope.delay.ms += f.delayMs;
          if (f.status !== 0) {
            counted(command, String(f.status), 1);
            throw new FirmwareError(command as SevCommand, f.status);
          }
        }
      }
      try {
        const r = (v as (...a: unknown[]) => unknown).apply(this, args);
        counted(command, 'SUCCESS', itemsArg === undefined ? 1 : (args[itemsArg] as unknown[]).length);
        return r;
      } catch (e) {
        if (e instanceof FirmwareError) counted(e.command, String(e.status), 1);
        throw e;
      }
    });
  }
  return new Proxy(obj, {
    get(target, prop, receiver) {
      return (typeof prop === 'string' && wrapped.get(prop)) || Reflect.get(target, prop, receiver);
    },
  });
}
