/** The firmware status a call ends with ('ok' when it succeeds). */
import { FirmwareError } from '../../server/firmware/status.js';

export function fwStatus(fn: () => unknown): number | string {
  try {
    fn();
    return 'ok';
  } catch (e) {
    if (e instanceof FirmwareError) return e.status;
    throw e;
  }
}
