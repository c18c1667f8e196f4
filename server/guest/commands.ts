/** Handlers of a guest's QMP monitor (docs/interface.md §7): run state, HMP, memory dumps (the daemon adds the common ones). */
import type { Handler, Handlers } from '../dispatch/dispatcher.js';
import type { SessionContext } from '../dispatch/common-commands.js';
import { atLeast } from '../dispatch/version.js';
import { QmpError } from '../errors/qmp-error.js';
import type { Guest } from './guest.js';
import { runHmp } from './hmp.js';
import { strerror } from '../util/strerror.js';
import type { PathPolicy } from '../confinement/paths.js';

export interface GuestContext extends SessionContext {
  guest: Guest;
  /** The VMM layer's hooks (SEV launch finish, info sev); absent for plain guests. */
  vmm: GuestVmm;
  /** Where dumps may be written (confinement). */
  paths: PathPolicy;
}

export interface GuestVmm {
  beforeFirstRun(): void;
  /** After a transition to running (a guest whose context was sent away stops at once). */
  afterRun?(): void;
  sevInfoLines(): string[] | undefined;
  /** What the host sees of guest memory: ciphertext of private pages (or DBG_DECRYPT). */
  hostRead(gpa: number, len: number): Buffer;
}

const DUMP_CHUNK = 1 << 20;

async function dumpMemory(ctx: GuestContext, start: number, size: number, filename: string): Promise<void> {
  const { vmm, paths, session } = ctx;
  let fh;
  try {
    fh = await paths.openForWrite('dumps', filename, session.access.origin);
  } catch (e) {
    if (e instanceof QmpError) throw e;
    throw QmpError.generic(`Could not open '${filename}': ${strerror(e)}`);
  }
  try {
    for (let done = 0; done < size; done += DUMP_CHUNK) {
      const n = Math.min(DUMP_CHUNK, size - done);
      await fh.write(vmm.hostRead(start + done, n));
    }
  } catch {
    throw QmpError.generic(`writing memory to '${filename}' failed`);
  } finally {
    await fh.close();
  }
}

function addrArgs(args: Record<string, unknown>): { val: number; size: number } {
  const val = args['val'];
  const size = args['size'];
  // Addresses beyond 2^53 are never backed by sevd memory.
  return { val: typeof val === 'number' ? val : Number.MAX_SAFE_INTEGER, size: typeof size === 'number' ? size : -1 };
}

function hex16(v: unknown): string {
  return BigInt.asUintN(64, BigInt(v as number | bigint)).toString(16).padStart(16, '0');
}

export function guestHandlers(): Handlers<GuestContext> {
  return {
    'query-status': (_a, { guest, session }) => ({
      running: guest.running,
      ...(atLeast(session.monitor.version, '9.0.0') ? {} : { singlestep: false }),
      status: guest.runState,
    }),
    'query-name': (_a, { guest }) => ({ name: guest.name }),
    'query-uuid': (_a, { guest }) => ({ UUID: guest.uuid }),
    'query-kvm': () => ({ enabled: true, present: true }),
    stop: (_a, { guest }) => guest.stop(),
    cont: (_a, { guest, vmm }) => guest.cont(() => vmm.beforeFirstRun(), () => vmm.afterRun?.()),
    system_reset: (_a, { guest }) => guest.systemReset(),
    system_powerdown: (_a, { guest }) => guest.systemPowerdown(),
    quit: (_a, { guest }) => {
      // Reply first, then SHUTDOWN, then the guest (and its connections) go away.
      setImmediate(() => guest.terminate('host-qmp-quit'));
    },
    'human-monitor-command': (args, { guest, vmm }) =>
      runHmp({ guest, sevInfoLines: () => vmm.sevInfoLines(), hostRead: (g, l) => vmm.hostRead(g, l) }, args['command-line']),
    memsave: async (args, ctx) => {
      const { guest } = ctx;
      if (args['cpu-index'] !== undefined && args['cpu-index'] !== 0) {
        throw QmpError.generic("Parameter 'cpu-index' expects a CPU number");
      }
      const { val, size } = addrArgs(args);
      // No page tables in an emulated guest: virtual addresses are guest-physical.
      if (size < 0 || (size > 0 && !guest.memory.regionOf(val, size))) {
        throw QmpError.generic(`Invalid addr 0x${hex16(args['val'])}/size ${String(args['size'])} specified`);
      }
      await dumpMemory(ctx, val, size, args['filename']);
    },
    pmemsave: async (args, ctx) => {
      const { val, size } = addrArgs(args);
      if (size < 0) throw QmpError.generic(`Invalid parameter 'size'`);
      await dumpMemory(ctx, val, size, args['filename']);
    },
  };
}
