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
};

export function strerror(e: unknown): string {
  const code = (e as { code?: string }).code;
  return (code && TEXTS[code]) || (e instanceof Error ? e.message : String(e));
}
