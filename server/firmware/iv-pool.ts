/**
 * Fresh random IVs for transport packets, cut from a refilled pool: one random call per
 * 4096 IVs instead of one per migrated page. (The firmware's own state, so not in abi/.)
 */
import { randomFillSync } from 'node:crypto';

const ivPool = Buffer.alloc(16 * 4096);
let ivAt = ivPool.length;

export function freshIv(): Buffer {
  if (ivAt === ivPool.length) {
    randomFillSync(ivPool);
    ivAt = 0;
  }
  const iv = Buffer.from(ivPool.subarray(ivAt, ivAt + 16));
  ivAt += 16;
  return iv;
}
