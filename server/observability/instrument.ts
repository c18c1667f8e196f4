/**
 * The firmware boundary: every firmware command the daemon issues passes here, where it is
 * counted by name and status and where an injected fault (docs/interface.md §13) replaces its
 * outcome, so everything above (KVM layer, QEMU's texts, replies, events, metrics, state
 * left behind) reacts as to a genuine failure. The firmware code itself is untouched;
 * which methods are commands is the firmware's own typed table (server/firmware/commands.ts).
 */
import { FirmwareError, type SevCommand } from '../firmware/status.js';
import type { Metrics } from './metrics.js';
import type { FaultRegistry } from '../faults/fault-registry.js';

export interface CountOptions<K extends string> {
  /** Batch methods: the argument whose length is the number of commands the call performs. */
  perItem?: Partial<Record<K, number>>;
  /** Where each command counts (the daemon's metrics). */
  metrics: Metrics;
  /** Armed faults to consult before each command. */
  faults?: FaultRegistry;
  /** The guest a firmware handle belongs to, for commands issued outside a guest's scope. */
  guestOfHandle?: (handle: number) => string | null;
}

/**
 * `obj` with every method of `commands` (a table from server/firmware/commands.ts, typed
 * over the class's methods) counted as SUCCESS or its firmware status, and faulted. The
 * methods run on `obj` itself, so a command that calls another (a single packet through its
 * batch) counts once.
 */
export function instrumentFirmware<T extends object, K extends string & keyof T>(obj: T, commands: Record<K, SevCommand>, opts: CountOptions<K>): T {
  const counted = (command: string, status: string, by: number) =>
    opts.metrics.firmware.incKey(`${command}\0${status}`, () => ({ command, status }), by);
  const wrapped = new Map<string, unknown>();
  for (const name of Object.keys(commands) as K[]) {
    const v = obj[name];
    if (typeof v !== 'function') throw new TypeError(`firmware boundary: ${name} is not a method`);
    const command = commands[name];
    const itemsArg = opts.perItem?.[name];
    wrapped.set(name, (...args: unknown[]) => {
      const faults = opts.faults;
      if (faults) {
        const scope = faults.scopes.current();
        const guest = scope?.guest ?? (typeof args[0] === 'number' ? opts.guestOfHandle?.(args[0]) ?? null : null);
        const f = faults.firmware(command, guest);
        if (f) {
          // The delay is served asynchronously by whoever waits for this command (its QMP reply).
          if (scope) scope.delay.ms += f.delayMs;
          if (f.status !== 0) {
            counted(command, String(f.status), 1);
            throw new FirmwareError(command, f.status);
          }
        }
      }
      try {
        const r = (v as (...a: unknown[]) => unknown).apply(obj, args);
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
