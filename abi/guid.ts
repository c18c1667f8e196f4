/** GUIDs in EFI byte order: first three fields little-endian, the rest as written. */
export function guidToBytes(text: string): Buffer {
  const h = text.replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(h)) throw new Error(`not a GUID: ${text}`);
  const b = Buffer.from(h, 'hex');
  b.subarray(0, 4).reverse();
  b.subarray(4, 6).reverse();
  b.subarray(6, 8).reverse();
  return b;
}

export function guidFromBytes(b: Uint8Array): string {
  const x = Buffer.from(b.subarray(0, 16));
  x.subarray(0, 4).reverse();
  x.subarray(4, 6).reverse();
  x.subarray(6, 8).reverse();
  const h = x.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
