/**
 * `sevd platform export --out DIR`: the platform's certificates under the file names
 * guest-owner tools use (sevctl export, sev-tool): ark.cert ask.cert cek.cert oca.cert
 * pek.cert pdh.cert and AMD's ask_ark.cert (ASK ‖ ARK).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Platform } from '../firmware/platform.js';
import { SevDevice } from '../firmware/sev-device.js';
import type { SevdConfig } from '../config/defaults.js';

export function exportPlatform(config: SevdConfig, outDir: string): string[] {
  const p = config.platform;
  const sev = new SevDevice(
    new Platform({ generation: p.generation, apiMajor: p.apiMajor, apiMinor: p.apiMinor, build: p.build, seed: p.seed, stateDir: config.stateDir }),
  );
  const { pdh, certs } = sev.pdhCertExport();
  const root = sev.platform.emulatedRoot;
  const files: Record<string, Buffer> = {
    'ark.cert': root.ark,
    'ask.cert': root.ask,
    'cek.cert': certs.subarray(2 * 0x824),
    'oca.cert': certs.subarray(0x824, 2 * 0x824),
    'pek.cert': certs.subarray(0, 0x824),
    'pdh.cert': pdh,
    'ask_ark.cert': Buffer.concat([root.ask, root.ark]),
  };
  mkdirSync(outDir, { recursive: true });
  for (const [name, data] of Object.entries(files)) writeFileSync(join(outDir, name), data);
  return Object.keys(files);
}
