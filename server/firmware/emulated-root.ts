/**
 * sevd's emulated AMD root (sevd's own choice, config/amd-roots/README.md): one ARK/ASK pair per CPU generation,
 * RSA-4096 with RSA-PSS SHA-384, key ids starting with "sevd" so nobody mistakes them for
 * AMD's. Generated once and committed under config/amd-roots/ as test-only data; the ASK
 * private key signs every emulated chip's CEK of that generation (and, on the SNP
 * generations, its VCEKs), the ARK's signs the X.509 ARK and ASK.
 */
import { createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { AMD_USAGE_ARK, AMD_USAGE_ASK, decodeAmdCert, encodeAmdCert, signAmdCert, type AmdCert } from '../../abi/certs/amd-cert.js';
import { beToLe } from '../../abi/bytes.js';

export const GENERATIONS = ['naples', 'rome', 'milan', 'genoa', 'turin'] as const;
export type Generation = (typeof GENERATIONS)[number];

/** The package's config/amd-roots, found from dist/server/firmware or server/firmware. */
export const ROOTS_DIR = fileURLToPath(new URL('../../../config/amd-roots/', import.meta.url).href.replace('/dist/config/', '/config/'));

export interface EmulatedRoot {
  generation: Generation;
  ark: Buffer;
  ask: Buffer;
  askCert: AmdCert;
  askKey: KeyObject;
  /** The ARK's private key: kept for the SNP generations, whose X.509 ARK signs itself and the ASK. */
  arkKey: KeyObject | null;
}

const cache = new Map<string, EmulatedRoot>();

export function loadEmulatedRoot(generation: Generation, dir = ROOTS_DIR): EmulatedRoot {
  const key = `${dir}:${generation}`;
  let r = cache.get(key);
  if (!r) {
    const d = join(dir, generation);
    const ask = readFileSync(join(d, 'ask.cert'));
    r = {
      generation,
      ark: readFileSync(join(d, 'ark.cert')),
      ask,
      askCert: decodeAmdCert(ask).cert,
      askKey: createPrivateKey(readFileSync(join(d, 'ask.key'))),
      arkKey: existsSync(join(d, 'ark.key')) ? createPrivateKey(readFileSync(join(d, 'ark.key'))) : null,
    };
    cache.set(key, r);
  }
  return r;
}

function keyId(role: 'ark' | 'ask', generation: Generation): Buffer {
  const id = Buffer.alloc(16);
  id.write(`sevd-${role}-${generation}`.slice(0, 16), 'ascii');
  return id;
}

function rsaFields(pub: KeyObject): { modulus: Buffer; pubExp: Buffer } {
  const jwk = pub.export({ format: 'jwk' });
  return { modulus: beToLe(Buffer.from(jwk.n!, 'base64url'), 512), pubExp: beToLe(Buffer.from(jwk.e!, 'base64url'), 512) };
}

/** One-off generation (kept for reproducibility of the committed data). */
export function generateEmulatedRoot(generation: Generation, dir = ROOTS_DIR): void {
  const ark = generateKeyPairSync('rsa', { modulusLength: 4096, publicExponent: 0x10001 });
  const ask = generateKeyPairSync('rsa', { modulusLength: 4096, publicExponent: 0x10001 });
  const tbs = (role: 'ark' | 'ask', pub: KeyObject): AmdCert => ({
    version: 1,
    keyId: keyId(role, generation),
    certifyingId: keyId('ark', generation),
    keyUsage: role === 'ark' ? AMD_USAGE_ARK : AMD_USAGE_ASK,
    reserved: Buffer.alloc(16),
    pubExpBits: 4096,
    modulusBits: 4096,
    ...rsaFields(pub),
    signature: Buffer.alloc(0),
  });
  const arkCert = signAmdCert(tbs('ark', ark.publicKey), ark.privateKey, 4096);
  const askCert = signAmdCert(tbs('ask', ask.publicKey), ark.privateKey, 4096);
  const d = join(dir, generation);
  mkdirSync(d, { recursive: true });
  writeFileSync(join(d, 'ark.cert'), encodeAmdCert(arkCert));
  writeFileSync(join(d, 'ask.cert'), encodeAmdCert(askCert));
  writeFileSync(join(d, 'ask.key'), ask.privateKey.export({ format: 'pem', type: 'pkcs8' }));
  writeFileSync(join(d, 'ark.key'), ark.privateKey.export({ format: 'pem', type: 'pkcs8' }));
}
