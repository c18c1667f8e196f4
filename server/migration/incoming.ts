/**
 * The destination side: listen (tcp:, unix:) or read (file:), load the stream page by page
 * (RECEIVE_START on the first encrypted record, RECEIVE_UPDATE_DATA for each packet, plain
 * pages as they are), acknowledge, then run or pause as autostart says. A broken stream or
 * a refused packet discards the half-received guest: context, ASID and memory.
 */
import net from 'node:net';
import { createReadStream } from 'node:fs';
import { unlink } from 'node:fs/promises';
import type { Guest } from '../guest/guest.js';
import type { SevGuest } from '../sev/sev-guest.js';
import { fwCall } from '../sev/fw-call.js';
import type { MigrationState } from './migration-state.js';
import { ByteReader, StreamDecoder, StreamFormatError } from './stream.js';
import { ACK } from './sink.js';
import type { MigrationUri } from './uri.js';
import { metrics } from '../observability/metrics.js';

const PAGE = 4096;

export class IncomingMigration {
  private server: net.Server | null = null;
  private socket: net.Socket | null = null;
  started = false;

  constructor(
    private readonly guest: Guest,
    private readonly sev: SevGuest | null,
    private readonly state: MigrationState,
  ) {}

  /** Starts listening (or reading a file); MIGRATION setup is emitted even without `events`. */
  async start(uri: MigrationUri): Promise<void> {
    this.started = true;
    this.state.reset();
    this.state.setStatus('setup', true);
    if (uri.kind === 'file') {
      const r = new ByteReader();
      const f = createReadStream(uri.path);
      f.on('data', (d) => r.push(d as Buffer));
      f.on('end', () => r.end());
      f.on('error', (e) => r.end(e));
      void this.load(r, null);
      return;
    }
    if (uri.kind === 'unix') await unlink(uri.path).catch(() => undefined);
    const server = net.createServer((sock) => {
      if (this.socket) return void sock.destroy(); // one stream per incoming migration
      this.socket = sock;
      server.close();
      const r = new ByteReader();
      sock.on('data', (d: Buffer) => r.push(d));
      sock.on('end', () => r.end());
      sock.on('error', (e) => r.end(e));
      sock.on('close', () => r.end());
      void this.load(r, sock);
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      if (uri.kind === 'tcp') server.listen(uri.port, uri.host, () => resolve());
      else server.listen(uri.path, () => resolve());
    });
  }

  /** The port actually bound (tcp:HOST:0 picks one). */
  get port(): number | undefined {
    const a = this.server?.address();
    return typeof a === 'object' && a ? a.port : undefined;
  }

  close(): void {
    this.server?.close();
    this.socket?.destroy();
  }

  private async load(r: ByteReader, sock: net.Socket | null): Promise<void> {
    const st = this.state;
    const mem = this.guest.memory;
    const dec = new StreamDecoder(r);
    try {
      await dec.header();
      st.setStatus('active');
      for (;;) {
        const rec = await dec.next();
        const bytes = rec.kind === 'page' ? PAGE : rec.kind === 'encrypted' ? rec.trans.length + rec.header.length : 8;
        st.ram.transferred += bytes;
        metrics.migrationBytes.inc({ direction: 'in' }, bytes);
        if (rec.kind === 'config') {
          const ram = mem.regions.filter((x) => x.name.startsWith('pc.ram')).reduce((a, x) => a + x.size, 0);
          if (rec.ramBytes !== ram) throw new Error(`sevd: incoming guest memory size ${ram} differs from the stream's ${rec.ramBytes}`);
          if (rec.config['sev'] === true && !this.sev) throw new Error('sevd: the stream carries an SEV guest but this guest has no sev-guest object');
        } else if (rec.kind === 'encrypted') {
          if (!this.sev) throw new Error('sevd: encrypted page for a guest without SEV');
          if (rec.start) this.sev.receiveStart(rec.start.policy, rec.start.pdh, rec.start.session);
          if (this.sev.state !== 'receive-update') throw new StreamFormatError('encrypted page before the SEND_START record');
          const sev = this.sev;
          fwCall(() => sev.sr.receiveUpdateData(sev.handle, rec.header, mem, rec.gpa, rec.trans));
        } else if (rec.kind === 'page' || rec.kind === 'zero') {
          if (!mem.regionOf(rec.gpa, PAGE)) throw new StreamFormatError(`page at 0x${rec.gpa.toString(16)} is outside guest memory`);
          if (this.sev) mem.setPrivate(rec.gpa, PAGE, false);
          mem.write(rec.gpa, rec.kind === 'page' ? rec.data : Buffer.alloc(PAGE));
        } else if (rec.kind === 'shared') {
          for (const [a, b] of rec.ranges) mem.setPrivate(a * PAGE, (b - a) * PAGE, false);
        } else if (rec.kind === 'device') {
          break;
        }
      }
      sock?.write(Buffer.from([ACK]));
      sock?.end();
      st.endedAt = Date.now();
      st.setStatus('completed');
      this.guest.incomingDone(() => this.sev?.beforeFirstRun());
    } catch (e) {
      sock?.destroy();
      this.sev?.discardIncoming();
      if (!this.sev) mem.discard();
      st.errorDesc = e instanceof Error ? e.message : String(e);
      st.endedAt = Date.now();
      st.setStatus('failed');
    }
  }
}
