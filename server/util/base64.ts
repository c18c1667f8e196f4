/**
 * QEMU's two base64 decoders. GLib's g_base64_decode (glib/gbase64.c), which QEMU
 * uses for every base64 QMP argument: never fails; skips characters outside the alphabet;
 * '=' counts as a zero sextet and trims the group's output; an incomplete final group is
 * dropped. And qbase64_decode, strict, for object properties (sev-snp-guest's id-block, …).
 */
const RANK = new Int16Array(256).fill(-1);
'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'.split('').forEach((ch, i) => (RANK[ch.charCodeAt(0)] = i));
RANK['='.charCodeAt(0)] = 0;

export function glibBase64Decode(text: string): Buffer {
  const input = Buffer.from(text, 'latin1');
  const out = Buffer.alloc(Math.floor((input.length * 3) / 4) + 3);
  let o = 0;
  let v = 0;
  let i = 0;
  let last0 = 0;
  let last1 = 0;
  for (const c of input) {
    const rank = RANK[c]!;
    if (rank < 0) continue;
    last1 = last0;
    last0 = c;
    v = ((v << 6) | rank) & 0xffffff;
    if (++i === 4) {
      out[o++] = v >> 16;
      if (last1 !== 0x3d) out[o++] = (v >> 8) & 0xff;
      if (last0 !== 0x3d) out[o++] = v & 0xff;
      i = 0;
    }
  }
  return out.subarray(0, o);
}

/** qbase64_decode: the standard alphabet, whole groups, padding only at the end; null when not valid. */
export function qbase64Decode(text: string): Buffer | null {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) return null;
  return Buffer.from(text, 'base64');
}
