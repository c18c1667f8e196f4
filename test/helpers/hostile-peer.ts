/**
 * A hostile migration source: writes sevd's stream framing by hand (no server code, so a
 * bug in the encoder cannot hide one in the parser), can open a real SEV stream for any
 * target (its PDH is public: anyone can build a session for it and a valid first packet),
 * and can stream random but well-framed records for a bounded time (benchmarks, fuzzing).
 */
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { aes128ctr, encodePacketHeader, MAC_MIGRATION, packetMac } from '../../abi/launch-crypto.js';
import { buildLaunchSession } from './guest-owner.js';
import { Prng } from './prng.js';

const PAGE = 4096;
export const Flag = { ZERO: 0x02, MEM_SIZE: 0x04, PAGE: 0x08, EOS: 0x10, ENCRYPTED_DATA: 0x200, DEVICE_STATE: 0x800 } as const;

const be32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return b;
};
/** be64 (addr | flags). */
export function word(addr: number, flags: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32BE(Math.floor(addr / 2 ** 32), 0);
  b.writeUInt32BE(((addr % 2 ** 32) | flags) >>> 0, 4);
  return b;
}
const withLen = (b: Buffer) => Buffer.concat([be32(b.length), b]);

/** `SEVDMIG\0` and the version. */
export const streamHeader = () => Buffer.concat([Buffer.from('SEVDMIG\0', 'latin1'), be32(1)]);
export const ramSizeRecord = (ramBytes: number, sev: boolean) => Buffer.concat([word(ramBytes, Flag.MEM_SIZE), withLen(Buffer.from(JSON.stringify({ name: 'vm', sev })))]);
/** The device state that ends a stream. */
export const deviceRecord = (running = true) => Buffer.concat([word(0, Flag.DEVICE_STATE), withLen(Buffer.from(JSON.stringify({ running })))]);
export const pageRecord = (gpa: number, data: Buffer) => Buffer.concat([word(gpa, Flag.PAGE), data]);
/** The shared-regions record's head; ranges follow as sharedRange(), then sharedEnd(). */
export const sharedHead = () => Buffer.concat([word(0, Flag.ENCRYPTED_DATA), be32(2)]);
export const sharedRange = (first: number, end: number) => Buffer.concat([be32(1), be32(first), be32(end)]);
export const sharedEnd = () => be32(2);

/**
 * The first encrypted record of a stream the target accepts: SEND_START's blob for the
 * target's PDH (a session of our own making) and one page packet under our TEK/TIK.
 */
export function forgedReceiveStart(targetPdhB64: string, policy: number, gpa = 0x100000, plaintext: Buffer = Buffer.alloc(PAGE, 0x41)): Buffer {
  const s = buildLaunchSession(Buffer.from(targetPdhB64, 'base64'), policy);
  const iv = randomBytes(16);
  const trans = aes128ctr(s.tek, iv, plaintext);
  const header = encodePacketHeader({ flags: 0, iv, mac: packetMac(MAC_MIGRATION, s.tik, { flags: 0, iv }, PAGE, trans) });
  const pdh = Buffer.from(s.godhB64, 'base64');
  const session = Buffer.from(s.sessionB64, 'base64');
  return Buffer.concat([word(gpa, Flag.ENCRYPTED_DATA), be32(1), be32(policy), withLen(pdh), withLen(session), withLen(header), withLen(trans)]);
}

/** Connects to an incoming guest's tcp: URI. */
export async function connectPeer(port: number, host = '127.0.0.1'): Promise<net.Socket> {
  const sock = net.connect(port, host);
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  sock.on('error', () => undefined);
  return sock;
}

/**
 * Writes with backpressure; false once the target closed the connection, or when it has
 * not taken the bytes by `deadline` (ms since the epoch), so a bounded run stays bounded.
 */
export async function send(sock: net.Socket, b: Buffer, deadline = Infinity): Promise<boolean> {
  if (sock.destroyed || !sock.writable) return false;
  if (sock.write(b)) return true;
  return new Promise<boolean>((r) => {
    const timer = Number.isFinite(deadline) ? setTimeout(() => done(false), Math.max(0, deadline - Date.now())) : undefined;
    const done = (ok: boolean) => {
      clearTimeout(timer);
      sock.off('drain', onDrain);
      sock.off('close', onClose);
      r(ok);
    };
    const onDrain = () => done(true);
    const onClose = () => done(false);
    sock.once('drain', onDrain);
    sock.once('close', onClose);
  });
}

export interface HostilePeerOptions {
  /** Port of an incoming guest's `tcp:127.0.0.1:PORT`. */
  port: number;
  host?: string;
  /** Stop after this long (ms). */
  durationMs: number;
  /** The guest's RAM in bytes (the stream's RAM size record matches it, so records get past it). */
  ramBytes: number;
  /** The stream says SEV (true: the target should be an SEV guest). */
  sev?: boolean;
  /** The target's PDH (query-sev-capabilities): a valid RECEIVE_START first, so SEV records are really loaded. */
  targetPdhB64?: string;
  seed?: number;
  /** Another fresh incoming guest's port once the target refused the stream and closed; none: stop. */
  nextPort?: () => Promise<number | null>;
}

export interface HostilePeerResult {
  bytes: number;
  records: number;
  /** Connections the target ended before the time was up (each a refused stream). */
  refused: number;
  seed: number;
}

/**
 * Streams random but well-framed migration records to incoming guests for `durationMs`:
 * header, RAM size (and a valid RECEIVE_START with targetPdhB64), then records of every kind
 * with fields mutated — addresses inside and outside RAM, lengths up to and past the limits,
 * shared-range lists in and out of order, empty and huge ranges, unknown flags and
 * sub-types, bad JSON, and now and then a stream that ends.
 */
export async function streamHostileRecords(o: HostilePeerOptions): Promise<HostilePeerResult> {
  const seed = o.seed ?? Math.floor(Math.random() * 2 ** 32);
  const rng = new Prng(seed);
  const rnd = () => rng.float();
  const int = (n: number) => Math.floor(rnd() * n);
  const end = Date.now() + o.durationMs;
  const result: HostilePeerResult = { bytes: 0, records: 0, refused: 0, seed };
  const ramPages = Math.floor(o.ramBytes / PAGE);
  const gpa = () => (rnd() < 0.9 ? int(ramPages) : int(2 ** 20)) * PAGE;
  const blobLen = () => [0, 1, 52, 4096, 16384, 16385, 2 ** 32 - 1][int(7)]!;
  const record = (): Buffer => {
    switch (int(10)) {
      case 0: return pageRecord(gpa(), randomBytes(PAGE));
      case 1: return Buffer.concat([word(gpa(), Flag.ZERO), Buffer.from([int(256)])]);
      case 2: {
        // An encrypted page: a header and transport of random length (mostly a page).
        const t = rnd() < 0.7 ? PAGE : int(PAGE * 2);
        return Buffer.concat([word(gpa(), Flag.ENCRYPTED_DATA), be32(1), withLen(randomBytes(rnd() < 0.8 ? 52 : int(80))), withLen(randomBytes(t))]);
      }
      case 3: {
        const parts = [sharedHead()];
        let at = int(ramPages);
        for (let i = int(rnd() < 0.1 ? 20000 : 50); i > 0; i--) {
          const ordered = rnd() < 0.9;
          const first = ordered ? at + int(8) : int(2 ** 32);
          const len = rnd() < 0.95 ? 1 + int(16) : int(2 ** 32 - first);
          parts.push(sharedRange(first, first + len));
          at = first + len;
        }
        if (rnd() < 0.9) parts.push(sharedEnd());
        return Buffer.concat(parts);
      }
      case 4: return word(0, Flag.EOS);
      case 5: return Buffer.concat([word(0, Flag.DEVICE_STATE), withLen(Buffer.from(rnd() < 0.5 ? '{"running":true}' : '{bad'))]);
      case 6: return Buffer.concat([word(int(2 ** 20) * PAGE, int(0x1000)), randomBytes(int(64))]);
      case 7: return Buffer.concat([word(0, Flag.ENCRYPTED_DATA), be32(int(5)), randomBytes(int(64))]);
      case 8: return Buffer.concat([word(0, Flag.MEM_SIZE), be32(blobLen()), randomBytes(int(256))]);
      default: return ramSizeRecord(rnd() < 0.5 ? o.ramBytes : int(2 ** 40), rnd() < 0.5);
    }
  };
  let port: number | null = o.port;
  while (port !== null && Date.now() < end) {
    const sock = await connectPeer(port, o.host);
    let open = true;
    sock.on('close', () => (open = false));
    const opening: Buffer[] = [streamHeader(), ramSizeRecord(o.ramBytes, o.sev ?? o.targetPdhB64 !== undefined)];
    if (o.targetPdhB64) opening.push(forgedReceiveStart(o.targetPdhB64, 1));
    for (const b of opening) {
      if (!(await send(sock, b, end))) break;
      result.bytes += b.length;
    }
    while (open && Date.now() < end) {
      const b = record();
      if (!(await send(sock, b, end))) break;
      result.bytes += b.length;
      result.records++;
      // Let the target answer (and close) now and then.
      if ((result.records & 63) === 0) await new Promise((r) => setImmediate(r));
    }
    sock.destroy();
    if (Date.now() >= end) break;
    result.refused++;
    port = o.nextPort ? await o.nextPort() : null;
  }
  return result;
}
