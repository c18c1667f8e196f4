/**
 * The human-monitor-command subset (QEMU's HMP `info status`, `info sev`, `xp`).
 * HMP reports its own errors as text inside a successful reply.
 *
 * `xp` is bounded: QEMU formats whatever count it is given, which is harmless when the
 * output goes to a terminal but lets one QMP client make this long-running host build a
 * reply of gigabytes (`xp /100000000xg 0`). A dump covers at most XP_MAX_BYTES of guest
 * memory; past that the command answers an error line and reads nothing.
 */
import type { Guest } from './guest.js';

export interface HmpTarget {
  guest: Guest;
  /** The host's view of guest memory (what a dump shows). */
  hostRead(gpa: number, len: number): Buffer;
  /** `info sev` text lines for this guest (from the SEV layer), or undefined for no SEV. */
  sevInfoLines(): string[] | undefined;
}

export function runHmp(t: HmpTarget, commandLine: string): string {
  const line = commandLine.trim();
  const [word = '', ...rest] = line.split(/\s+/);
  let out: string;
  if (word === '') out = '';
  else if (word === 'info') out = info(t, rest[0] ?? '');
  else if (word === 'xp') out = xp(t, line.slice(2).trim());
  else out = `unknown command: '${word}'\n`;
  return out.replace(/\n/g, '\r\n');
}

function info(t: HmpTarget, item: string): string {
  switch (item) {
    case '':
      return 'info status  -- show the current VM status (running|paused)\ninfo sev  -- show SEV information\n';
    case 'status': {
      const s = t.guest.runState;
      if (s === 'running') return 'VM status: running\n';
      if (s === 'paused') return 'VM status: paused\n';
      return `VM status: paused (${s})\n`;
    }
    case 'sev': {
      const lines = t.sevInfoLines();
      return lines ? lines.map((l) => l + '\n').join('') : 'SEV is not enabled\n';
    }
    default:
      return `unknown command: 'info ${item}'\n`;
  }
}

const FORMATS = 'xduoci';
/** The most guest memory one `xp` may dump (count × unit size): 64 KiB, ~300 KB of text. */
export const XP_MAX_BYTES = 64 * 1024;
const SIZES: Record<string, number> = { b: 1, h: 2, w: 4, g: 8 };

function xp(t: HmpTarget, args: string): string {
  const guest = t.guest;
  let fmt = guest.hmpLast.format;
  let size = guest.hmpLast.size;
  let count = 1;
  let rest = args;
  if (rest.startsWith('/')) {
    const m = /^\/(\d*)([^\s]*)\s*(.*)$/.exec(rest)!;
    if (m[1]) count = Number(m[1]);
    for (const ch of m[2]!) {
      if (FORMATS.includes(ch)) fmt = ch;
      else if (SIZES[ch]) size = SIZES[ch]!;
      else return `invalid char in format: '${ch}'\n`;
    }
    rest = m[3]!;
  }
  const addrText = rest.trim();
  let addr: bigint;
  try {
    addr = BigInt(addrText);
  } catch {
    return `invalid char in expression: '${addrText}'\n`;
  }
  const unit = fmt === 'c' ? 1 : size;
  if (count * unit > XP_MAX_BYTES) return `xp: at most ${XP_MAX_BYTES} bytes can be dumped at once (asked for ${count} units of ${unit})\n`;
  guest.hmpLast = { format: fmt, size };
  size = unit;
  const total = count * size;
  const perLine = size === 1 ? 8 : 16;
  let out = '';
  for (let done = 0; done < total; done += perLine) {
    const lineAddr = addr + BigInt(done);
    out += lineAddr.toString(16).padStart(16, '0') + ':';
    const n = Math.min(perLine, total - done);
    if (lineAddr > BigInt(Number.MAX_SAFE_INTEGER) || !guest.memory.isMapped(Number(lineAddr))) {
      out += ' Cannot access memory\n';
      break;
    }
    const bytes = t.hostRead(Number(lineAddr), n);
    for (let i = 0; i < n; i += size) out += ' ' + formatUnit(bytes, i, size, fmt);
    out += '\n';
  }
  return out;
}

function formatUnit(b: Buffer, at: number, size: number, fmt: string): string {
  let v = 0n;
  for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[at + i] ?? 0);
  switch (fmt) {
    case 'd': {
      const signed = BigInt.asIntN(size * 8, v);
      return signed.toString().padStart(size * 3, ' ');
    }
    case 'u': return v.toString().padStart(size * 3, ' ');
    case 'o': return '0' + v.toString(8);
    case 'c': {
      const ch = Number(v);
      if (ch >= 0x20 && ch < 0x7f) return `'${String.fromCharCode(ch)}'`;
      const named: Record<number, string> = { 0x0a: '\\n', 0x0d: '\\r', 0x09: '\\t' };
      return `'${named[ch] ?? '\\x' + ch.toString(16).padStart(2, '0')}'`;
    }
    default: return '0x' + v.toString(16).padStart(size * 2, '0');
  }
}
