/**
 * The destination side: listen (tcp:, unix:) or read (file:) and hand the bytes to the
 * stream loader (stream-loader.ts), which loads them, acknowledges, then runs or pauses the
 * guest as autostart says. One stream per incoming migration.
 */
import net from 'node:net';
import { createReadStream } from 'node:fs';
import { unlink } from 'node:fs/promises';
import type { Guest } from '../guest/guest.js';
import type { ConfidentialGuest } from '../sev/guest-kinds.js';
import type { MigrationState } from './migration-state.js';
import { StreamLoader, type LoaderOptions, type StreamSource } from './stream-loader.js';
import { ACK } from './sink.js';
import type { MigrationUri } from './uri.js';

export class IncomingMigration {
  private server: net.Server | null = null;
  private socket: net.Socket | null = null;
  private loader: StreamLoader | null = null;
  started = false;

  constructor(
    private readonly guest: Guest,
    private readonly sev: ConfidentialGuest | null,
    private readonly state: MigrationState,
    private readonly options: LoaderOptions = {},
  ) {}

  /**
   * Starts listening (or reading a file: `fd` when the caller opened it already); MIGRATION
   * setup is emitted even without `events`.
   */
  async start(uri: MigrationUri, fd?: number): Promise<void> {
    this.started = true;
    this.state.reset();
    this.state.setStatus('setup', true);
    if (uri.kind === 'file') {
      const f = fd !== undefined ? createReadStream('', { fd }) : createReadStream(uri.path);
      const load = this.load({ pause: () => f.pause(), resume: () => f.resume(), ack: () => undefined, destroy: () => f.destroy() });
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
      const load = this.load({
        pause: () => sock.pause(),
        resume: () => sock.resume(),
        ack: () => sock.end(Buffer.from([ACK])),
        destroy: () => sock.destroy(),
      });
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

  private load(source: StreamSource): StreamLoader {
    this.loader = new StreamLoader(this.guest, this.sev, this.state, source, this.options);
    return this.loader;
  }

  close(): void {
    this.loader?.abort();
    this.server?.close();
    this.socket?.destroy();
  }
}
