/**
 * Runs a /dev/sev management call (the control monitor's platform commands); a
 * FirmwareError becomes the interface's `SEV: <CMD> failed: fw_err=<n> (<text>)`.
 */
import { FirmwareError } from '../firmware/status.js';
import { QmpError } from '../qmp/errors.js';

export function fwCall<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof FirmwareError) throw QmpError.generic(e.message);
    throw e;
  }
}
