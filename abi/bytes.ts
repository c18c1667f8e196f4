/** Little-endian big integers as SEV stores them, and the conversions crypto libraries need. */

/** Reverses a little-endian field into big-endian, keeping `size` significant bytes. */
export function leToBe(le: Uint8Array, size: number): Buffer {
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i++) out[size - 1 - i] = le[i] ?? 0;
  return out;
}

/** Writes a big-endian value as little-endian, zero-extended to `fieldSize`. Throws if it does not fit. */
export function beToLe(be: Uint8Array, fieldSize: number): Buffer {
  let start = 0;
  while (start < be.length - 1 && be[start] === 0) start++;
  const sig = be.subarray(start);
  if (sig.length > fieldSize) throw new RangeError(`value of ${sig.length} bytes does not fit ${fieldSize}`);
  const out = Buffer.alloc(fieldSize);
  for (let i = 0; i < sig.length; i++) out[i] = sig[sig.length - 1 - i]!;
  return out;
}

export function isZero(b: Uint8Array, from = 0, to = b.length): boolean {
  for (let i = from; i < to; i++) if (b[i] !== 0) return false;
  return true;
}

export const b64url = (b: Uint8Array): string => Buffer.from(b).toString('base64url');

/** A 32-bit little-endian field. */
export function le32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
}
