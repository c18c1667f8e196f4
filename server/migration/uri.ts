/** Migration URIs sevd supports: tcp:HOST:PORT, unix:PATH, file:PATH (QEMU's forms). */
export type MigrationUri = { kind: 'tcp'; host: string; port: number } | { kind: 'unix'; path: string } | { kind: 'file'; path: string };

export function parseMigrationUri(uri: string): MigrationUri | undefined {
  const tcp = /^tcp:(\[[^\]]+\]|[^:]*):(\d+)$/.exec(uri);
  if (tcp) return { kind: 'tcp', host: tcp[1]!.replace(/^\[|\]$/g, '') || '0.0.0.0', port: Number(tcp[2]) };
  if (uri.startsWith('unix:') && uri.length > 5) return { kind: 'unix', path: uri.slice(5) };
  if (uri.startsWith('file:') && uri.length > 5) return { kind: 'file', path: uri.slice(5).replace(/,offset=\d+$/, '') };
  return undefined;
}
