/**
 * Unix-socket listener for one monitor: each accepted connection gets its own QMP
 * session. The socket file is created with a restrictive mode (0600 unless configured).
 */
import net from 'node:net';
import { chmod, chown, mkdir, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Monitor } from '../qmp/monitor.js';
import { QmpSession } from '../qmp/session.js';
import { qmpLine } from '../qmp/json/writer.js';
import type { ConnectionBudget } from './connection-budget.js';

export interface UnixListenerOptions {
  mode?: number;
  /** Numeric group id to own the socket file. */
  gid?: number;
  /** Output buffered beyond this pauses reading from that client (backpressure). */
  highWaterBytes?: number;
  agent?: boolean;
  budget?: ConnectionBudget;
}

export class UnixListener {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();

  private constructor(readonly path: string, monitor: Monitor<any>, private readonly opts: UnixListenerOptions) {
    this.server = net.createServer((socket) => this.accept(socket, monitor));
  }

  static async listen(path: string, monitor: Monitor<any>, opts: UnixListenerOptions = {}): Promise<UnixListener> {
    const l = new UnixListener(path, monitor, opts);
    await UnixListener.bind(l.server, path, opts);
    return l;
  }

  /** Binds `server` at `path`, private from the first instant, then gives it its mode and group. */
  static async bind(server: net.Server, path: string, opts: { mode?: number; gid?: number }): Promise<void> {
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    await unlink(path).catch(() => undefined);
    const l = { server };
    const mode = opts.mode ?? 0o600;
    // The socket is bound synchronously inside listen(): the umask keeps it private from the
    // first instant, and is restored before anything else can run (listeners open concurrently).
    const listening = new Promise<void>((resolve, reject) => {
      l.server.once('error', reject);
      l.server.once('listening', () => {
        l.server.off('error', reject);
        resolve();
      });
    });
    const old = process.umask(0o777 & ~mode);
    try {
      l.server.listen(path);
    } finally {
      process.umask(old);
    }
    await listening;
    await chmod(path, mode);
    if (opts.gid !== undefined) await chown(path, -1, opts.gid);
  }

  private accept(socket: net.Socket, monitor: Monitor<any>): void {
    const release = this.opts.budget?.acquire('unix', monitor.sessions.size) ?? (() => undefined);
    if (typeof release === 'string') {
      socket.end(qmpLine({ error: { class: 'GenericError', desc: release } }));
      return;
    }
    this.sockets.add(socket);
    const highWater = this.opts.highWaterBytes ?? 1 << 20;
    let readPaused = false;
    let sessionPaused = false;
    const updatePause = () => {
      const want = readPaused || sessionPaused;
      if (want) socket.pause();
      else socket.resume();
    };
    let corked = false;
    const session = new QmpSession(
      monitor,
      {
        write: (data) => {
          if (socket.destroyed) return;
          if (!socket.write(data) && !readPaused) {
            readPaused = true;
            updatePause();
          }
        },
        flush: () => {
          if (corked) {
            socket.uncork();
            socket.cork();
          }
        },
        close: () => {
          // A client that stopped reading would keep end() pending forever.
          socket.end();
          setTimeout(() => socket.destroy(), 1000).unref();
        },
        pause: () => {
          sessionPaused = true;
          updatePause();
        },
        resume: () => {
          sessionPaused = false;
          updatePause();
        },
      },
      { agent: this.opts.agent === true },
    );
    socket.on('drain', () => {
      if (readPaused && socket.writableLength < highWater) {
        readPaused = false;
        updatePause();
      }
    });
    socket.on('data', (chunk: Buffer) => {
      // Replies to one chunk go out in as few writes as possible.
      corked = true;
      socket.cork();
      session.receive(chunk);
      process.nextTick(() => {
        corked = false;
        socket.uncork();
      });
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      release();
      session.detach();
      this.sockets.delete(socket);
    });
  }

  get connections(): number {
    return this.sockets.size;
  }

  /** Stops accepting, closes every client and removes the socket file. */
  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await unlink(this.path).catch(() => undefined);
  }
}
