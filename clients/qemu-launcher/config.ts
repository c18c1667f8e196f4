/** Where sevd-qemu finds sevd and the real QEMU: SEVD_QEMU_CONFIG, else /etc/sevd/qemu.json, else defaults (docs/interface.md §15). */
import { readFileSync } from 'node:fs';

export interface LauncherConfig {
  launchSocket: string;
  qemu: string;
}

export const DEFAULTS: LauncherConfig = { launchSocket: '/run/sevd/launch.qmp', qemu: '/usr/bin/qemu-system-x86_64' };

export function loadConfig(env = process.env): LauncherConfig {
  const file = env['SEVD_QEMU_CONFIG'] ?? '/etc/sevd/qemu.json';
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' && env['SEVD_QEMU_CONFIG'] === undefined) return { ...DEFAULTS };
    throw new Error(`${file}: ${(e as Error).message}`);
  }
  const r = raw as Partial<LauncherConfig>;
  for (const k of ['launchSocket', 'qemu'] as const) {
    if (r[k] !== undefined && (typeof r[k] !== 'string' || r[k] === '')) throw new Error(`${file}: $.${k}: expected a path`);
  }
  return { ...DEFAULTS, ...r };
}
