/**
 * The SEV-SNP attestation report (1184 bytes; go-sev-guest abi.go, SNP ABI table 21):
 * versions 2 and 3 (3 adds the chip's CPUID family/model/stepping). Signed with ECDSA
 * P-384/SHA-384 over bytes 0x000–0x29F; R and S are 72-byte little-endian fields.
 */
import { createPublicKey, sign, verify, type KeyObject } from 'node:crypto';

export const SNP_REPORT_SIZE = 0x4a0;
export const SNP_SIGNED_SIZE = 0x2a0;

export interface SnpReport {
  version: number;
  guestSvn: number;
  policy: bigint;
  familyId: Buffer;
  imageId: Buffer;
  vmpl: number;
  signatureAlgo: number;
  currentTcb: bigint;
  platformInfo: bigint;
  /** Bit 0 author key enabled, bit 1 mask chip key, bits 2–4 signing key (0 VCEK, 1 VLEK, 7 none). */
  signerInfo: number;
  reportData: Buffer;
  measurement: Buffer;
  hostData: Buffer;
  idKeyDigest: Buffer;
  authorKeyDigest: Buffer;
  reportId: Buffer;
  reportIdMa: Buffer;
  reportedTcb: bigint;
  /** Version 3: the chip's CPUID family, model, stepping. */
  cpuid: { family: number; model: number; stepping: number } | null;
  chipId: Buffer;
  committedTcb: bigint;
  current: { build: number; minor: number; major: number };
  committed: { build: number; minor: number; major: number };
  launchTcb: bigint;
  signature: Buffer;
}

export function decodeSnpReport(b: Uint8Array): SnpReport {
  if (b.length !== SNP_REPORT_SIZE) throw new Error(`an SNP report is ${SNP_REPORT_SIZE} bytes, got ${b.length}`);
  const r = Buffer.from(b);
  const version = r.readUInt32LE(0);
  const slice = (a: number, z: number) => Buffer.from(r.subarray(a, z));
  return {
    version, guestSvn: r.readUInt32LE(4), policy: r.readBigUInt64LE(8), familyId: slice(0x10, 0x20), imageId: slice(0x20, 0x30),
    vmpl: r.readUInt32LE(0x30), signatureAlgo: r.readUInt32LE(0x34), currentTcb: r.readBigUInt64LE(0x38), platformInfo: r.readBigUInt64LE(0x40),
    signerInfo: r.readUInt32LE(0x48), reportData: slice(0x50, 0x90), measurement: slice(0x90, 0xc0), hostData: slice(0xc0, 0xe0),
    idKeyDigest: slice(0xe0, 0x110), authorKeyDigest: slice(0x110, 0x140), reportId: slice(0x140, 0x160), reportIdMa: slice(0x160, 0x180),
    reportedTcb: r.readBigUInt64LE(0x180),
    cpuid: version >= 3 ? { family: r[0x188]!, model: r[0x189]!, stepping: r[0x18a]! } : null,
    chipId: slice(0x1a0, 0x1e0), committedTcb: r.readBigUInt64LE(0x1e0),
    current: { build: r[0x1e8]!, minor: r[0x1e9]!, major: r[0x1ea]! },
    committed: { build: r[0x1ec]!, minor: r[0x1ed]!, major: r[0x1ee]! },
    launchTcb: r.readBigUInt64LE(0x1f0), signature: slice(0x2a0, 0x4a0),
  };
}

/** The report's body (everything but the signature), as the firmware lays it out. */
export function encodeSnpReportBody(f: Omit<SnpReport, 'signature'>): Buffer {
  const r = Buffer.alloc(SNP_REPORT_SIZE);
  r.writeUInt32LE(f.version, 0);
  r.writeUInt32LE(f.guestSvn, 4);
  r.writeBigUInt64LE(f.policy, 8);
  f.familyId.copy(r, 0x10);
  f.imageId.copy(r, 0x20);
  r.writeUInt32LE(f.vmpl, 0x30);
  r.writeUInt32LE(f.signatureAlgo, 0x34);
  r.writeBigUInt64LE(f.currentTcb, 0x38);
  r.writeBigUInt64LE(f.platformInfo, 0x40);
  r.writeUInt32LE(f.signerInfo, 0x48);
  f.reportData.copy(r, 0x50);
  f.measurement.copy(r, 0x90);
  f.hostData.copy(r, 0xc0);
  f.idKeyDigest.copy(r, 0xe0);
  f.authorKeyDigest.copy(r, 0x110);
  f.reportId.copy(r, 0x140);
  f.reportIdMa.copy(r, 0x160);
  r.writeBigUInt64LE(f.reportedTcb, 0x180);
  if (f.cpuid) {
    r[0x188] = f.cpuid.family;
    r[0x189] = f.cpuid.model;
    r[0x18a] = f.cpuid.stepping;
  }
  f.chipId.copy(r, 0x1a0);
  r.writeBigUInt64LE(f.committedTcb, 0x1e0);
  r.set([f.current.build, f.current.minor, f.current.major], 0x1e8);
  r.set([f.committed.build, f.committed.minor, f.committed.major], 0x1ec);
  r.writeBigUInt64LE(f.launchTcb, 0x1f0);
  return r;
}

/** 72-byte little-endian R ‖ S (in a 512-byte field) ↔ the 96-byte big-endian r ‖ s node speaks. */
const toP1363 = (sig: Uint8Array) => Buffer.concat([Buffer.from(sig.subarray(0, 48)).reverse(), Buffer.from(sig.subarray(72, 120)).reverse()]);

/** Signs a report body in place with the VCEK (the firmware's step). */
export function signSnpReport(body: Buffer, vcek: KeyObject): Buffer {
  const rs = sign('sha384', body.subarray(0, SNP_SIGNED_SIZE), { key: vcek, dsaEncoding: 'ieee-p1363' });
  const out = Buffer.from(body);
  out.fill(0, SNP_SIGNED_SIZE);
  Buffer.from(rs.subarray(0, 48)).reverse().copy(out, SNP_SIGNED_SIZE);
  Buffer.from(rs.subarray(48, 96)).reverse().copy(out, SNP_SIGNED_SIZE + 72);
  return out;
}

/** Checks the report's signature with a VCEK public key (a KeyObject or an X.509 certificate's key). */
export function verifySnpReportSignature(report: Uint8Array, vcekPublic: KeyObject): boolean {
  if (report.length !== SNP_REPORT_SIZE || Buffer.from(report).readUInt32LE(0x34) !== 1) return false;
  const key = vcekPublic.type === 'private' ? createPublicKey(vcekPublic) : vcekPublic;
  return verify('sha384', report.subarray(0, SNP_SIGNED_SIZE), { key, dsaEncoding: 'ieee-p1363' }, toP1363(report.subarray(SNP_SIGNED_SIZE)));
}
