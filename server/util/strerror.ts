/** C strerror() texts for the errno codes Node reports, as QEMU prints them. */
const TEXTS: Record<string, string> = {
  ENOENT: 'No such file or directory',
  EACCES: 'Permission denied',
  EISDIR: 'Is a directory',
  ENOTDIR: 'Not a directory',
  EEXIST: 'File exists',
  EROFS: 'Read-only file system',
  ENOSPC: 'No space left on device',
  EPERM: 'Operation not permitted',
  EIO: 'Input/output error',
  ENAMETOOLONG: 'File name too long',
  ELOOP: 'Too many levels of symbolic links',
  EFAULT: 'Bad address',
  EBUSY: 'Device or resource busy',
  EINVAL: 'Invalid argument',
  ENOTTY: 'Inappropriate ioctl for device',
  ENXIO: 'No such device or address',
  EAGAIN: 'Resource temporarily unavailable',
  EMFILE: 'Too many open files',
  EADDRINUSE: 'Address already in use',
  EADDRNOTAVAIL: 'Cannot assign requested address',
  ECONNREFUSED: 'Connection refused',
};

/** Linux errno numbers of the codes above (ioctl results are negative errnos). */
const NAMES: Record<number, string> = { 1: 'EPERM', 2: 'ENOENT', 5: 'EIO', 13: 'EACCES', 14: 'EFAULT', 16: 'EBUSY', 22: 'EINVAL', 25: 'ENOTTY', 28: 'ENOSPC', 30: 'EROFS' };

/** strerror() of an errno number. */
export function errnoText(errno: number): string {
  return TEXTS[NAMES[Math.abs(errno)] ?? ''] ?? `Unknown error ${Math.abs(errno)}`;
}

export function strerror(e: unknown): string {
  const code = (e as { code?: string }).code;
  return (code && TEXTS[code]) || (e instanceof Error ? e.message : String(e));
}
