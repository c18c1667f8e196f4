/** The built-in firmware image (abi/builtin-firmware.ts), built once: many guests share it. */
import { buildBuiltinFirmware } from '../../abi/builtin-firmware.js';

export { BUILTIN_FIRMWARE_SIZE, BUILTIN_HASH_AREA, BUILTIN_SECRET_AREA } from '../../abi/builtin-firmware.js';

let cached: Buffer | undefined;

export function builtinFirmware(): Buffer {
  cached ??= buildBuiltinFirmware();
  return cached;
}
