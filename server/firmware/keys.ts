/**
 * P-384 key handling for the platform: fresh keys, keys derived from `platform.seed`,
 * and their (private) serialisation for the non-volatile state.
 */
import { createHmac, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { p384 } from '@noble/curves/nist.js';

export function newP384Key(): KeyObject {
  return generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
}

const N = p384.Point.CURVE().n;

/** A private key from a scalar (big-endian, 48 bytes). */
export function p384KeyFromScalar(d: bigint): KeyObject {
  const dBytes = Buffer.from(d.toString(16).padStart(96, '0'), 'hex');
  const pub = p384.getPublicKey(dBytes, false); // 0x04 ‖ x ‖ y
  return createPrivateKey({
    key: {
      kty: 'EC', crv: 'P-384',
      d: dBytes.toString('base64url'),
      x: Buffer.from(pub.subarray(1, 49)).toString('base64url'),
      y: Buffer.from(pub.subarray(49, 97)).toString('base64url'),
    },
    format: 'jwk',
  });
}

/** sevd's own choice (config/amd-roots/README.md): chip id and CEK from the seed, so a test can build the same chip twice. */
export function deriveFromSeed(seedHex: string): { chipId: Buffer; cek: KeyObject } {
  const seed = Buffer.from(seedHex, 'hex');
  const chipId = createHmac('sha512', seed).update('sevd-chip-id').digest();
  const h = BigInt('0x' + createHmac('sha384', seed).update('sevd-cek').digest('hex'));
  return { chipId, cek: p384KeyFromScalar(1n + (h % (N - 1n))) };
}

export function publicOf(priv: KeyObject): KeyObject {
  return createPublicKey(priv);
}

/** Private keys in the state file: JWK text (the file is 0600 and never logged). */
export function serializeKey(k: KeyObject): string {
  return JSON.stringify(k.export({ format: 'jwk' }));
}

export function deserializeKey(s: string): KeyObject {
  return createPrivateKey({ key: JSON.parse(s) as import('node:crypto').JsonWebKey, format: 'jwk' });
}
