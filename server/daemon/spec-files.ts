/**
 * Every file a guest spec names, read here and only here, once, when the spec is checked:
 * the firmware image, the kernel and initrd, the SEV session inputs and the SNP certificate
 * table. Each is opened through the FileAccess of the client that gave the spec
 * (docs/interface.md §14: confined where its transport is), and a failure is worded as QEMU words that file's
 * failure, naming the member. The guest and its SEV state get buffers, never names, so a
 * file cannot fail (or change) between guest-add and the launch.
 */
import { closeSync, fstatSync, readFileSync, type Stats } from 'node:fs';
import { QmpError } from '../errors/qmp-error.js';
import { strerror } from '../util/strerror.js';
import type { FileAccess, FileKind } from '../confinement/paths.js';

/** A spec error names the member it is about (used for config-file paths). */
export class SpecError extends QmpError {
  constructor(readonly member: string, desc: string) {
    super('GenericError', desc);
  }
}

export type FileMember = 'firmware' | 'kernel' | 'initrd' | 'sev-guest.dh-cert-file' | 'sev-guest.session-file' | 'sev-snp-guest.certs-filename';

/** How QEMU words each file's failure (QEMU prints the C library's strerror text). */
const unreadable: Record<FileMember, (path: string, why: string) => string> = {
  firmware: (p, why) => `Could not load firmware '${p}': ${why}`,
  kernel: (p, why) => `could not load kernel '${p}': ${why}`,
  initrd: (p, why) => `could not load initial ram disk '${p}': ${why}`,
  'sev-guest.dh-cert-file': (p, why) => `SEV: Failed to read '${p}' (Failed to open file “${p}”: ${why})`,
  'sev-guest.session-file': (p, why) => `SEV: Failed to read '${p}' (Failed to open file “${p}”: ${why})`,
  'sev-snp-guest.certs-filename': (p, why) => `SEV-SNP: failed to read certificate table '${p}': ${why}`,
};

const KIND: Record<FileMember, FileKind> = {
  firmware: 'images', kernel: 'images', initrd: 'images',
  'sev-guest.dh-cert-file': 'inputs', 'sev-guest.session-file': 'inputs', 'sev-snp-guest.certs-filename': 'inputs',
};

/** Flash images larger than this would overlap the PCI hole below 4 GiB. */
export const MAX_FIRMWARE = 64 * 1024 * 1024;

export const firmwareSizeError = (path: string, n: number) =>
  new SpecError('firmware', `Firmware image '${path}' must be a non-empty multiple of 4 KiB up to 64 MiB (it has ${n} bytes)`);

/**
 * Firmware images are shared by many guests: keep the last few, keyed by the identity of
 * the file actually opened (device, inode, size, mtime, ctime from its descriptor), so
 * that another file met under the same name is never taken for a cached one.
 */
const firmwareCache = new Map<string, Buffer>();

const errno = (code: string) => Object.assign(new Error(code), { code });

/**
 * What is opened must be a regular file: a directory fails as reading it would (EISDIR);
 * a FIFO, socket or device is refused before any read (the daemon must not wait on a
 * pipe nobody writes, or read a device without end).
 */
function checkRegular(st: Stats): void {
  if (st.isDirectory()) throw errno('EISDIR');
  if (!st.isFile()) throw errno('EINVAL');
}

/**
 * Opens `path` for `member` and hands the descriptor and its status to `use`. Refusals of
 * the confinement rule pass as they are; every other failure is the member's QEMU text.
 */
function withFile<T>(files: FileAccess, member: FileMember, path: string, use: (fd: number, st: Stats) => T): T {
  let fd: number;
  try {
    fd = files.openForRead(KIND[member], path);
  } catch (e) {
    if (e instanceof QmpError) throw e;
    throw new SpecError(member, unreadable[member](path, strerror(e)));
  }
  try {
    const st = fstatSync(fd);
    checkRegular(st);
    return use(fd, st);
  } catch (e) {
    if (e instanceof QmpError) throw e;
    throw new SpecError(member, unreadable[member](path, strerror(e)));
  } finally {
    closeSync(fd);
  }
}

/** The whole file, or null for no name. */
export function readSpecFile(files: FileAccess, member: FileMember, path: string | null): Buffer | null {
  return path === null ? null : withFile(files, member, path, (fd) => readFileSync(fd));
}

/** Only that the file opens as QEMU would open it (its content is not needed). */
export function checkSpecFile(files: FileAccess, member: FileMember, path: string | null): void {
  if (path !== null) withFile(files, member, path, () => undefined);
}

/**
 * A firmware image, through the cache, with its size rule; and the bytes the file takes on
 * disk (QEMU's block-node `actual-size`, docs/interface.md §15), from the same descriptor.
 */
export function readFirmware(files: FileAccess, path: string): { image: Buffer; allocated: number } {
  const read = withFile(files, 'firmware', path, (fd, st) => {
    const key = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
    let cached = firmwareCache.get(key);
    if (!cached) {
      if (st.size > MAX_FIRMWARE) throw firmwareSizeError(path, st.size); // not worth reading
      cached = readFileSync(fd);
      if (firmwareCache.size >= 8) firmwareCache.delete(firmwareCache.keys().next().value!);
      firmwareCache.set(key, cached);
    }
    return { image: cached, allocated: st.blocks * 512 };
  });
  const n = read.image.length;
  if (n === 0 || n % 4096 !== 0 || n > MAX_FIRMWARE) throw firmwareSizeError(path, n);
  return read;
}
