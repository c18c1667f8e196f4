/** Counts firmware commands by name and status without touching the firmware code. */
import { FirmwareError } from '../firmware/status.js';
import { metrics } from './metrics.js';

const snake = (m: string) => m.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();

/** Wraps the named methods of `obj` so each call is counted as SUCCESS or its firmware status. */
export function countFirmwareCommands<T extends object>(obj: T, methods: readonly string[], rename: Record<string, string> = {}): T {
  const wanted = new Set(methods);
  return new Proxy(obj, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver);
      if (typeof prop !== 'string' || !wanted.has(prop) || typeof v !== 'function') return v;
      const command = rename[prop] ?? snake(prop);
      return function (this: unknown, ...args: unknown[]) {
        try {
          const r = (v as (...a: unknown[]) => unknown).apply(this, args);
          metrics.firmware.inc({ command, status: 'SUCCESS' });
          return r;
        } catch (e) {
          if (e instanceof FirmwareError) metrics.firmware.inc({ command: e.command, status: String(e.status) });
          throw e;
        }
      };
    },
  });
}
