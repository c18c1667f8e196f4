/**
 * Just enough DER (X.690) to read a certificate's extensions and to write the small values
 * AMD's VCEK extensions hold. Not a general ASN.1 library: certificates are built with
 * @peculiar/x509 on the issuing side; verifiers need only to find and decode extensions.
 */
export interface Tlv {
  tag: number;
  /** The value's bytes. */
  value: Buffer;
  /** Offset just past the element. */
  end: number;
}

export function readTlv(b: Buffer, at: number): Tlv {
  const tag = b[at]!;
  let len = b[at + 1]!;
  let off = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4) throw new Error('DER: unsupported length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + b[off + i]!;
    off += n;
  }
  if (off + len > b.length) throw new Error('DER: truncated');
  return { tag, value: b.subarray(off, off + len), end: off + len };
}

/** The elements of a constructed value, in order. */
export function children(value: Buffer): Tlv[] {
  const out: Tlv[] = [];
  for (let at = 0; at < value.length; ) {
    const t = readTlv(value, at);
    out.push(t);
    at = t.end;
  }
  return out;
}

export function decodeOid(v: Buffer): string {
  const parts = [Math.floor(v[0]! / 40), v[0]! % 40];
  let n = 0;
  for (const byte of v.subarray(1)) {
    n = n * 128 + (byte & 0x7f);
    if (!(byte & 0x80)) {
      parts.push(n);
      n = 0;
    }
  }
  return parts.join('.');
}

/** A certificate's extensions: OID → the extnValue's contents (the OCTET STRING's bytes). */
export function certificateExtensions(der: Uint8Array): Map<string, Buffer> {
  const cert = readTlv(Buffer.from(der), 0);
  const tbs = children(children(cert.value)[0]!.value);
  const out = new Map<string, Buffer>();
  const wrapper = tbs.find((t) => t.tag === 0xa3); // [3] extensions
  if (!wrapper) return out;
  for (const ext of children(children(wrapper.value)[0]!.value)) {
    const parts = children(ext.value);
    out.set(decodeOid(parts[0]!.value), parts[parts.length - 1]!.value);
  }
  return out;
}

function tlv(tag: number, value: Buffer): Buffer {
  const len = value.length;
  const head = len < 0x80 ? Buffer.from([tag, len]) : len < 0x100 ? Buffer.from([tag, 0x81, len]) : Buffer.from([tag, 0x82, len >> 8, len & 0xff]);
  return Buffer.concat([head, value]);
}

export function encodeInteger(n: number): Buffer {
  const bytes: number[] = [];
  let v = n;
  do {
    bytes.unshift(v & 0xff);
    v = Math.floor(v / 256);
  } while (v > 0);
  if (bytes[0]! & 0x80) bytes.unshift(0);
  return tlv(0x02, Buffer.from(bytes));
}

export function decodeInteger(der: Buffer): number {
  const t = readTlv(der, 0);
  if (t.tag !== 0x02) throw new Error('DER: not an INTEGER');
  return t.value.reduce((a, b) => a * 256 + b, 0);
}

export const encodeIa5String = (s: string) => tlv(0x16, Buffer.from(s, 'ascii'));

export function decodeIa5String(der: Buffer): string {
  const t = readTlv(der, 0);
  if (t.tag !== 0x16) throw new Error('DER: not an IA5String');
  return t.value.toString('ascii');
}
