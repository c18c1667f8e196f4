/**
 * A guest owner written independently of sevd's firmware code: @noble for ECDH, HMAC,
 * SHA-256 and AES-CTR, its own certificate and table encoders. It is what the end-to-end
 * tests trust, so it must not import anything from server/ or abi/ (a layer test checks).
 */
import { p384 } from '@noble/curves/nist.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { ctr } from '@noble/ciphers/aes.js';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const u32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
};
const rev = (b: Uint8Array) => Buffer.from(b).reverse();
const mac = (key: Uint8Array, ...parts: Uint8Array[]) => Buffer.from(hmac(sha256, key, Buffer.concat(parts)));

function kdf(key: Uint8Array, label: string, context: Uint8Array): Buffer {
  return mac(key, u32(1), Buffer.from(label), Buffer.from([0]), context, u32(128)).subarray(0, 16);
}

function guidBytes(g: string): Buffer {
  const b = Buffer.from(g.replace(/-/g, ''), 'hex');
  return Buffer.concat([rev(b.subarray(0, 4)), rev(b.subarray(4, 6)), rev(b.subarray(6, 8)), b.subarray(8)]);
}

export interface OwnerSession {
  godhB64: string;
  sessionB64: string;
  tek: Buffer;
  tik: Buffer;
  policy: number;
}

/** GODH certificate (virtee/sev's form: API 0.0, usage PDH, ECDH, both slots empty) and session for a platform PDH. */
export function buildLaunchSession(pdhCert: Uint8Array, policy: number): OwnerSession {
  const qx = rev(pdhCert.subarray(0x14, 0x14 + 48));
  const qy = rev(pdhCert.subarray(0x5c, 0x5c + 48));
  const pdhPub = Buffer.concat([Buffer.from([4]), qx, qy]);
  const sk = p384.utils.randomSecretKey();
  const pub = p384.getPublicKey(sk, false);
  const z = Buffer.from(p384.getSharedSecret(sk, pdhPub)).subarray(1); // x only
  const godh = Buffer.alloc(0x824);
  godh.writeUInt32LE(1, 0);
  godh.writeUInt32LE(0x1003, 8);
  godh.writeUInt32LE(0x003, 0xc);
  godh.writeUInt32LE(2, 0x10);
  rev(pub.subarray(1, 49)).copy(godh, 0x14);
  rev(pub.subarray(49, 97)).copy(godh, 0x5c);
  godh.writeUInt32LE(0x1000, 0x414);
  godh.writeUInt32LE(0x1000, 0x61c);
  const nonce = randomBytes(16);
  const master = kdf(z, 'sev-master-secret', nonce);
  const kek = kdf(master, 'sev-kek', new Uint8Array(0));
  const kik = kdf(master, 'sev-kik', new Uint8Array(0));
  const tek = randomBytes(16);
  const tik = randomBytes(16);
  const iv = randomBytes(16);
  const wrapTk = Buffer.from(ctr(kek, iv).encrypt(Buffer.concat([tek, tik])));
  const session = Buffer.concat([nonce, wrapTk, iv, mac(kik, wrapTk), mac(tik, u32(policy))]);
  return { godhB64: godh.toString('base64'), sessionB64: session.toString('base64'), tek, tik, policy };
}

/** Expected MEASURE for a launch digest; compares with the blob from query-sev-launch-measure. */
export function verifyMeasurement(s: OwnerSession, blobB64: string, info: { apiMajor: number; apiMinor: number; build: number }, ld: Uint8Array): boolean {
  const blob = Buffer.from(blobB64, 'base64');
  const expected = mac(s.tik, Buffer.from([4, info.apiMajor, info.apiMinor, info.build]), u32(s.policy), ld, blob.subarray(32, 48));
  return expected.equals(blob.subarray(0, 32));
}

export function launchDigest(...parts: Uint8Array[]): Buffer {
  return Buffer.from(sha256(Buffer.concat(parts)));
}

/** EFI secret table with the given entries, encrypted and MACed for sev-inject-launch-secret. */
export function buildSecretPacket(s: OwnerSession, measureBlobB64: string, entries: { guid: string; data: Buffer }[]) {
  const body = Buffer.concat(entries.map((e) => Buffer.concat([guidBytes(e.guid), u32(20 + e.data.length), e.data])));
  const table = Buffer.concat([guidBytes('1e74f542-71dd-4d66-963e-ef4287ff173b'), u32(20 + body.length), body]);
  const padded = Buffer.alloc(Math.ceil(table.length / 16) * 16);
  table.copy(padded);
  const iv = randomBytes(16);
  const ct = Buffer.from(ctr(s.tek, iv).encrypt(padded));
  const measure = Buffer.from(measureBlobB64, 'base64').subarray(0, 32);
  const m = mac(s.tik, Buffer.from([1]), u32(0), iv, u32(ct.length), u32(ct.length), ct, measure);
  return { header: Buffer.concat([u32(0), iv, m]).toString('base64'), secret: ct.toString('base64'), plaintext: padded };
}

/** The GODH and session as the files a `sev-guest` object names (dh-cert-file, session-file). */
export function writeSessionFiles(dir: string, name: string, s: OwnerSession): { 'dh-cert-file': string; 'session-file': string } {
  const dh = join(dir, `${name}-godh.b64`);
  const sess = join(dir, `${name}-session.b64`);
  writeFileSync(dh, s.godhB64);
  writeFileSync(sess, s.sessionB64);
  return { 'dh-cert-file': dh, 'session-file': sess };
}
