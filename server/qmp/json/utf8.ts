/**
 * QEMU's "modified UTF-8" rules (util/unicode.c): the parser rejects what
 * mod_utf8_codepoint() rejects, and the writer turns each invalid sequence into U+FFFD
 * exactly as quoted_str() does, so error texts that echo raw input bytes match QEMU's.
 */

export function isValidCodepoint(cp: number): boolean {
  if (cp < 0 || cp > 0x10ffff) return false;
  if ((cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xfffe) === 0xfffe) return false;
  if (cp >= 0xd800 && cp <= 0xdfff) return false;
  return true;
}

const MIN_CP = [0x80, 0x800, 0x10000, 0x200000, 0x4000000];

/**
 * Decodes one code point at `pos` (reading at most 6 bytes and never past `end`).
 * Returns [codepoint or -1, next position]. Mirrors mod_utf8_codepoint().
 */
export function modUtf8Codepoint(buf: Uint8Array, pos: number, end: number): [number, number] {
  const limit = Math.min(end, pos + 6);
  let p = pos;
  let byte = buf[p++]!;
  if (byte < 0x80) return [byte, p];
  if (byte >= 0xfe || (byte & 0x40) === 0) return [-1, p];
  let len = 0;
  let mask = 0x80;
  for (; byte & mask; mask >>= 1) len++;
  let cp = byte & (mask - 1);
  for (let i = 1; i < len; i++) {
    byte = p < limit ? buf[p]! : 0;
    if ((byte & 0xc0) !== 0x80) return [-1, p];
    p++;
    cp = (cp << 6) | (byte & 0x3f);
  }
  if (!isValidCodepoint(cp)) return [-1, p];
  if (cp < MIN_CP[len - 2]! && !(cp === 0 && len === 2)) return [-1, p];
  return [cp, p];
}

/**
 * Decodes bytes the way QEMU's JSON writer reads a C string: stop at the first NUL,
 * invalid sequences become U+FFFD.
 */
export function decodeLenient(buf: Uint8Array, start = 0, end = buf.length): string {
  let out = '';
  let p = start;
  while (p < end && buf[p] !== 0) {
    const [cp, next] = modUtf8Codepoint(buf, p, end);
    out += String.fromCodePoint(cp < 0 ? 0xfffd : cp);
    p = next;
  }
  return out;
}
