/** Counts firmware commands by name and status without touching the firmware code. */
import { FirmwareError } from '../firmware/status.js';
import { metrics } from './metrics.js';

const snake = (m: string) => m.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();

export interface CountOptions {
  /** Command names that snake case does not give (PEK_CSR, DF_FLUSH, …). */
  rename?: Record<string, string>;
  /** Batch methods: the argument whose length is the number of commands the call performs. */
  perItem?: Record<string, number>;
}

const counted = (command: string, status: string, by: number) =>
  metrics.firmware.incKey(`${command}\0${status}`, () => ({ command, status }), by);

/** Wraps the named methods of `obj` so each call is counted as SUCCESS or its firmware status. */
export function countFirmwareCommands<T extends object>(obj: T, methods: readonly string[], opts: CountOptions = {}): T {
  const wrapped = new Map<string, unknown>();
  for (const name of methods) {
    const v = (obj as Record<string, unknown>)[name];
    if (typeof v !== 'function') continue;
    const command = opts.rename?.[name] ?? snake(name);
    const itemsArg = opts.perItem?.[name];
    wrapped.set(name, function (this: unknown, ...args: unknown[]) {
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
