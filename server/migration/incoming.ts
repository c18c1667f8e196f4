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
import type { MigrationState } from './migration-state.js';
import { StreamFormatError, StreamParser } from './stream-parser.js';
import type { StreamRecord } from './stream.js';
import type { IncomingPacket } from '../firmware/send-receive.js';
import { PageBatch } from '../memory/bulk/page-batch.js';
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
      const f = createReadStream(uri.path);
      const load = this.loader(null);
      f.on('data', (d) => load.data(d as Buffer));
      f.on('end', () => load.end());
      f.on('error', (e) => load.end(e));
      return;
    }
    if (uri.kind === 'unix') await unlink(uri.path).catch(() => undefined);
    const server = net.createServer((sock) => {
      if (this.socket) return void sock.destroy(); // one stream per incoming migration
      this.socket = sock;
      server.close();
      const load = this.loader(sock);
      sock.on('data', (d: Buffer) => load.data(d));
      sock.on('end', () => load.end());
      sock.on('error', (e) => load.end(e));
      sock.on('close', () => load.end());
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

  /**
   * Loads the stream as it arrives: each chunk is parsed and applied synchronously, so the
   * socket is not read again until the chunk's pages are in (TCP carries the backpressure).
   * Consecutive encrypted pages go to the firmware as one batch.
   */
  private loader(sock: net.Socket | null): { data(chunk: Buffer): void; end(err?: Error): void } {
    const st = this.state;
    const parser = new StreamParser();
    let pending: IncomingPacket[] = [];
    let done = false;
    let activated = false;
    const flush = () => {
      if (!pending.length) return;
      const packets = pending;
      pending = [];
      this.sev!.receiveUpdateData(packets);
    };
    const fail = (e: unknown) => {
      done = true;
      sock?.destroy();
      this.sev?.discardIncoming();
      if (!this.sev) this.guest.memory.discard();
      st.errorDesc = e instanceof Error ? e.message : String(e);
      st.endedAt = Date.now();
      st.setStatus('failed');
    };
    const finish = () => {
      done = true;
      sock?.write(Buffer.from([ACK]));
      sock?.end();
      st.endedAt = Date.now();
      st.setStatus('completed');
      this.guest.incomingDone(() => this.sev?.beforeFirstRun());
    };
    return {
      data: (chunk) => {
        if (done) return;
        try {
          parser.push(chunk);
          if (!activated) {
            activated = true;
            st.setStatus('active');
          }
          for (let rec = parser.next(); rec; rec = parser.next()) {
            if (rec.kind === 'encrypted' && !rec.start && rec.trans.length === PAGE && this.sev?.state === 'receive-update') {
              this.count(rec.trans.length + rec.header.length);
              pending.push({ gpa: rec.gpa, header: rec.header, trans: rec.trans });
              if (pending.length === PageBatch.CAPACITY) flush();
              continue;
            }
            flush();
            if (this.apply(rec)) {
              finish();
              return;
            }
          }
          flush();
        } catch (e) {
          fail(e);
        }
      },
      end: (err) => {
        if (!done) fail(err ?? new Error('migration stream ended early'));
      },
    };
  }

  private count(bytes: number): void {
    this.state.ram.transferred += bytes;
    metrics.migrationBytes.incKey('in', { direction: 'in' }, bytes);
  }

  /** Applies one record; true at the device state that ends the stream. */
  private apply(rec: StreamRecord): boolean {
    const mem = this.guest.memory;
    this.count(rec.kind === 'page' ? PAGE : rec.kind === 'encrypted' ? rec.trans.length + rec.header.length : 8);
    if (rec.kind === 'config') {
      const ram = mem.regions.filter((x) => x.name.startsWith('pc.ram')).reduce((a, x) => a + x.size, 0);
      if (rec.ramBytes !== ram) throw new Error(`sevd: incoming guest memory size ${ram} differs from the stream's ${rec.ramBytes}`);
      if (rec.config['sev'] === true && !this.sev) throw new Error('sevd: the stream carries an SEV guest but this guest has no sev-guest object');
    } else if (rec.kind === 'encrypted') {
      if (!this.sev) throw new Error('sevd: encrypted page for a guest without SEV');
      if (rec.start) this.sev.receiveStart(rec.start.policy, rec.start.pdh, rec.start.session);
      if (this.sev.state !== 'receive-update') throw new StreamFormatError('encrypted page before the SEND_START record');
      this.sev.receiveUpdateData([{ gpa: rec.gpa, header: rec.header, trans: rec.trans }]);
    } else if (rec.kind === 'page' || rec.kind === 'zero') {
      if (!mem.regionOf(rec.gpa, PAGE)) throw new StreamFormatError(`page at 0x${rec.gpa.toString(16)} is outside guest memory`);
      if (this.sev) mem.setPrivate(rec.gpa, PAGE, false);
      mem.write(rec.gpa, rec.kind === 'page' ? rec.data : Buffer.alloc(PAGE));
    } else if (rec.kind === 'shared') {
      for (const [a, b] of rec.ranges) mem.setPrivate(a * PAGE, (b - a) * PAGE, false);
    }
    return rec.kind === 'device';
  }
}
