/**
 * QEMU writes a QDict's members in hash-table order (qobject/qdict.c, tdb_hash, 512
 * buckets, newest first within a bucket). Reproducing it makes sevd's output byte-identical
 * to QEMU's; clients must not depend on it, but golden transcripts do.
 */
const BUCKETS = 512;
const bucketCache = new Map<string, number>();

/** tdb_hash() over the key's UTF-8 bytes, 32-bit unsigned arithmetic. */
export function qdictHash(key: string): number {
  const bytes = Buffer.from(key, 'utf8');
  let v = Math.imul(0x238f13af, bytes.length) >>> 0;
  for (let i = 0; i < bytes.length; i++) {
    v = (v + ((bytes[i]! << ((i * 5) % 24)) >>> 0)) >>> 0;
  }
  return (Math.imul(1103515243, v) + 12345) >>> 0;
}

export function qdictBucket(key: string): number {
  let b = bucketCache.get(key);
  if (b === undefined) {
    b = qdictHash(key) % BUCKETS;
    if (bucketCache.size < 65536) bucketCache.set(key, b);
  }
  return b;
}

const orderCache = new Map<string, number[]>();

/**
 * Returns the indices of `keys` (given in insertion order) in wire order: ascending
 * bucket, and within one bucket the key inserted last first.
 */
const SINGLE = [0];

export function qdictOrder(keys: readonly string[]): number[] {
  if (keys.length === 1) return SINGLE;
  const sig = keys.join('\u0000');
  let order = orderCache.get(sig);
  if (order) return order;
  order = keys.map((_, i) => i);
  const buckets = keys.map(qdictBucket);
  order.sort((a, b) => buckets[a]! - buckets[b]! || b - a);
  if (orderCache.size < 4096) orderCache.set(sig, order);
  return order;
}
