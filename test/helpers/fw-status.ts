/** How a firmware or KVM call ended: 'ok', the firmware status, or the ioctl's negative errno. */
import { FirmwareError } from '../../server/firmware/status.js';
import { KvmError } from '../../server/kvm/kvm-sev.js';

function outcome<E>(fn: () => unknown, cls: new (...a: never[]) => E, pick: (e: E) => number): number | string {
  try {
    fn();
    return 'ok';
  } catch (e) {
    if (e instanceof cls) return pick(e);
    throw e;
  }
}

export const fwStatus = (fn: () => unknown) => outcome(fn, FirmwareError, (e) => e.status);
export const kvmErrno = (fn: () => unknown) => outcome(fn, KvmError, (e) => e.ret);
/** Through the KVM layer: the firmware status of a refusal ('ok' when it succeeds). */
export const kvmFwStatus = (fn: () => unknown) => outcome(fn, KvmError, (e) => e.fwError);
