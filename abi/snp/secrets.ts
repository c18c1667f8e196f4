/**
 * The SNP secrets page (linux `struct snp_secrets_page`): version, IMI enable, FMS, the
 * guest-visible workarounds, and VMPCK0–3 — the keys of the guest's messages to the
 * firmware. The firmware writes it at SNP_LAUNCH_UPDATE (page type SECRETS); the guest
 * reads its VMPCK from it.
 */
export const SECRETS_VERSION = 3;

export interface SecretsPage {
  version: number;
  imiEnable: boolean;
  fms: number;
  gosvw: Buffer;
  vmpcks: [Buffer, Buffer, Buffer, Buffer];
}

export function encodeSecretsPage(s: SecretsPage): Buffer {
  const p = Buffer.alloc(4096);
  p.writeUInt32LE(s.version, 0);
  p.writeUInt32LE(s.imiEnable ? 1 : 0, 4);
  p.writeUInt32LE(s.fms, 8);
  s.gosvw.copy(p, 16, 0, 16);
  s.vmpcks.forEach((k, i) => k.copy(p, 32 + 32 * i));
  return p;
}

export function decodeSecretsPage(p: Uint8Array): SecretsPage {
  const b = Buffer.from(p);
  const vmpck = (i: number) => Buffer.from(b.subarray(32 + 32 * i, 64 + 32 * i));
  return { version: b.readUInt32LE(0), imiEnable: (b.readUInt32LE(4) & 1) === 1, fms: b.readUInt32LE(8), gosvw: Buffer.from(b.subarray(16, 32)), vmpcks: [vmpck(0), vmpck(1), vmpck(2), vmpck(3)] };
}
