/**
 * The guest-owner toolkit as library functions: what sevctl / sev-tool give a guest owner.
 * Chain verification against a trusted ARK, launch session building, expected launch
 * digest and measurement, the secret packet, attestation report checks. The owner's role
 * only: every format and formula comes from abi/, the library the firmware uses too (its
 * correctness is pinned by the public test vectors and an independent test owner).
 */
import { createHash, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { verifyChain, type ChainBlobs, type ChainResult } from '../../abi/certs/chain.js';
import { Algo, decodeSevCert, ecPublicKey, encodeSevCert, Usage } from '../../abi/certs/sev-cert.js';
import { unsignedCert } from '../../abi/certs/issue.js';
import {
  aes128ctr, buildSession, ecdhSecret, encodePacketHeader, launchMeasure, MAC_LAUNCH_SECRET, packetMac, sessionKeys,
} from '../../abi/launch-crypto.js';
import { decodeReport, verifyReport } from '../../abi/attestation-report.js';
import { buildSecretTable, type SecretEntry } from '../../abi/efi-secret-table.js';
import { buildKernelHashesTable } from '../../abi/kernel-hashes.js';
import { findEntry, parseOvmfTable, readBaseSize, SEV_HASH_TABLE_BLOCK_GUID } from '../../abi/ovmf-table.js';
import { buildVmsas, CPU_MODELS, esResetEip } from '../../abi/vmsa.js';

const ROOTS = fileURLToPath(new URL('../../../clients/owner/amd-roots/', import.meta.url));
const CERT_NAMES = ['ark', 'ask', 'cek', 'oca', 'pek', 'pdh'] as const;

export type Trust = { generation: string } | { ark: Uint8Array };

/** Certificates from a directory of `<name>.cert` files (sevd platform export, sevctl export). */
export function chainFromDir(dir: string): Partial<ChainBlobs> {
  const out: Partial<ChainBlobs> = {};
  for (const n of CERT_NAMES) if (existsSync(join(dir, `${n}.cert`))) out[n] = readFileSync(join(dir, `${n}.cert`));
  return out;
}

/** Certificates from sevd's `sev-export-certs` reply. */
export function chainFromExport(reply: Record<string, string>): Partial<ChainBlobs> {
  const out: Partial<ChainBlobs> = {};
  for (const n of CERT_NAMES) if (reply[n]) out[n] = Buffer.from(reply[n]!, 'base64');
  return out;
}

/**
 * Verifies a platform chain against a trusted ARK: AMD's real one for a generation, or an
 * explicit file (an emulated root). The chain's ARK must be byte-identical to the trusted one.
 */
export function verifyPlatform(chain: Partial<ChainBlobs>, trust: Trust): ChainResult {
  let ark: Buffer;
  let ask: Buffer | undefined;
  if ('generation' in trust) {
    const dir = join(ROOTS, trust.generation);
    if (!existsSync(dir)) return { ok: false, step: 'trust', reason: `no AMD root for generation '${trust.generation}'` };
    ark = readFileSync(join(dir, 'ark.cert'));
    ask = readFileSync(join(dir, 'ask.cert'));
  } else ark = Buffer.from(trust.ark);
  if (chain.ark && !Buffer.from(chain.ark).equals(ark)) return { ok: false, step: 'trust', reason: 'the chain\'s ARK is not the trusted ARK' };
  const full = { ...chain, ark, ask: chain.ask ?? ask } as ChainBlobs;
  for (const n of CERT_NAMES) if (!full[n]) return { ok: false, step: n.toUpperCase(), reason: 'certificate missing' };
  return verifyChain(full);
}

export interface LaunchSession {
  godh: Buffer;
  session: Buffer;
  tek: Buffer;
  tik: Buffer;
  policy: number;
}

/** GODH certificate (virtee/sev's form) and the 128-byte session for a platform PDH. */
export function buildLaunchSession(pdhCert: Uint8Array, policy: number): LaunchSession {
  const pdh = decodeSevCert(pdhCert);
  if (pdh.usage !== Usage.PDH) throw new Error('not a PDH certificate');
  const godhKey: KeyObject = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
  const godh = encodeSevCert(unsignedCert(Usage.PDH, Algo.ECDH_SHA256, godhKey, { major: 0, minor: 0 }));
  const nonce = randomBytes(16);
  const keys = sessionKeys(ecdhSecret(godhKey, ecPublicKey(pdh.pubKey)), nonce);
  const tek = randomBytes(16);
  const tik = randomBytes(16);
  return { godh, session: buildSession(keys, tek, tik, nonce, randomBytes(16), policy), tek, tik, policy };
}

/** What an SEV-ES launch measures after the data: one VMSA per vCPU. */
export interface EsLaunch {
  vcpus: number;
  /** A QEMU CPU model name (its CPUID signature goes into each VMSA). */
  vcpuType: string;
  /** KVM_SEV_INIT2's vmsa_features (0 unless DebugSwap was asked for). */
  sevFeatures?: number;
  /** legacy-vm-type=on: the older VMSA without the FPU control words. */
  legacyVmType?: boolean;
}

/**
 * The launch digest QEMU's flow produces: SHA-256(firmware [‖ padded kernel-hashes table]
 * [‖ the SEV-ES VMSAs in vCPU order]).
 */
export function launchDigest(firmware: Uint8Array, boot?: { kernel: Uint8Array; initrd?: Uint8Array | null; append?: string | null }, es?: EsLaunch): Buffer {
  const h = createHash('sha256').update(firmware);
  const table = parseOvmfTable(firmware);
  const entries = 'entries' in table ? table.entries : [];
  if (boot) {
    const area = readBaseSize(findEntry(entries, SEV_HASH_TABLE_BLOCK_GUID));
    if (!area || area.base === 0 || area.size < 176) throw new Error('Kernel specified but OVMF doesn\'t support kernel/initrd/cmdline measurement');
    h.update(buildKernelHashesTable(boot.kernel, boot.initrd ?? null, boot.append ?? null));
  }
  if (es) {
    const signature = CPU_MODELS[es.vcpuType];
    if (signature === undefined) throw new Error(`unknown vCPU type '${es.vcpuType}' (known: ${Object.keys(CPU_MODELS).join(', ')})`);
    const apEip = esResetEip(entries);
    if (apEip === undefined && es.vcpus > 1) throw new Error('the firmware has no SEV-ES reset block: its APs cannot start');
    for (const page of buildVmsas(es.vcpus, apEip ?? 0, { vcpuSignature: signature, sevFeatures: es.sevFeatures ?? 0, fpuInit: !es.legacyVmType })) h.update(page);
  }
  return h.digest();
}

export interface PlatformInfo {
  apiMajor: number;
  apiMinor: number;
  build: number;
}

/** base64(MEASURE ‖ MNONCE) as query-sev-launch-measure returns it. */
export function buildMeasurement(tik: Uint8Array, info: PlatformInfo, policy: number, ld: Uint8Array, mnonce: Uint8Array): string {
  return Buffer.concat([launchMeasure(tik, info, policy, ld, mnonce), mnonce]).toString('base64');
}

export function verifyMeasurement(blobB64: string, tik: Uint8Array, info: PlatformInfo, policy: number, ld: Uint8Array): boolean {
  const blob = Buffer.from(blobB64, 'base64');
  if (blob.length !== 48) return false;
  return buildMeasurement(tik, info, policy, ld, blob.subarray(32)) === blob.toString('base64');
}

/** The EFI secret table, encrypted and MACed: the two arguments of sev-inject-launch-secret. */
export function buildSecret(tek: Uint8Array, tik: Uint8Array, measureBlobB64: string, entries: SecretEntry[], iv: Uint8Array = randomBytes(16)) {
  const table = buildSecretTable(entries);
  const ct = aes128ctr(tek, iv, table);
  const measure = Buffer.from(measureBlobB64, 'base64').subarray(0, 32);
  const mac = packetMac(MAC_LAUNCH_SECRET, tik, { flags: 0, iv }, table.length, ct, measure);
  return { header: encodePacketHeader({ flags: 0, iv: Buffer.from(iv), mac }).toString('base64'), secret: ct.toString('base64') };
}

/** Checks an attestation report's PEK signature and, when given, its mnonce, digest and policy. */
export function verifyAttestation(reportB64: string, pekCert: Uint8Array, expect: { mnonce?: Uint8Array; launchDigest?: Uint8Array; policy?: number } = {}) {
  const report = Buffer.from(reportB64, 'base64');
  const problems: string[] = [];
  if (report.length !== 208) return { ok: false, problems: [`report is ${report.length} bytes, not 208`] };
  if (!verifyReport(report, ecPublicKey(decodeSevCert(pekCert).pubKey))) problems.push('signature does not verify with the PEK');
  const r = decodeReport(report);
  if (expect.mnonce && !r.mnonce.equals(Buffer.from(expect.mnonce))) problems.push('mnonce differs');
  if (expect.launchDigest && !r.launchDigest.equals(Buffer.from(expect.launchDigest))) problems.push('launch digest differs');
  if (expect.policy !== undefined && r.policy !== expect.policy) problems.push(`policy 0x${r.policy.toString(16)} differs`);
  return { ok: problems.length === 0, problems, report: r };
}
