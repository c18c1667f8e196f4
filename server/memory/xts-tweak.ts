/** The XTS tweak of a page: its system physical address as a 16-byte little-endian integer. */
export function tweak(spa: number): Buffer {
  if (spa % 4096 !== 0) throw new Error('tweak SPA must be page aligned');
  const t = Buffer.alloc(16);
  t.writeBigUInt64LE(BigInt(spa), 0);
  return t;
}
