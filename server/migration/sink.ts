/** Where an outgoing stream goes (a socket or a file), with backpressure and the target's acknowledgement. */
import net from 'node:net';
import type { FileHandle } from 'node:fs/promises';
import type { MigrationUri } from './uri.js';

/** Opens a file: URI's file for writing (the caller decides where it may be). */
export type FileOpener = (path: string) => Promise<FileHandle>;

export interface StreamSink {
  write(b: Buffer): Promise<void>;
  /** Sockets: waits for the target's one-byte acknowledgement; files: flush to disk. */
  finish(timeoutMs: number): Promise<void>;
  abort(): void;
}

export const ACK = 0x06;

export async function openSink(uri: MigrationUri, openFile: FileOpener): Promise<StreamSink> {
  if (uri.kind === 'file') {
    const fh: FileHandle = await openFile(uri.path);
    return {
      write: async (b) => {
        await fh.write(b);
      },
      finish: async () => {
        await fh.sync();
        await fh.close();
      },
      abort: () => void fh.close().catch(() => undefined),
    };
  }
  const sock = uri.kind === 'tcp' ? net.connect(uri.port, uri.host) : net.connect(uri.path);
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', () => resolve());
    sock.once('error', reject);
  });
  let failure: Error | null = null;
  let ack = false;
  const waiters: (() => void)[] = [];
  const wake = () => waiters.splice(0).forEach((w) => w());
  sock.on('error', (e) => {
    failure = e;
    wake();
  });
  sock.on('close', () => {
    failure ??= new Error('the migration target closed the connection');
    wake();
  });
  sock.on('data', (d: Buffer) => {
    if (d.includes(ACK)) ack = true;
    wake();
  });
  const wait = () => new Promise<void>((r) => waiters.push(r));
  // Records are small (one page each): gather them into larger writes.
  let batch: Buffer[] = [];
  let batched = 0;
  const flush = async () => {
    if (!batched) return;
    const b = batch.length === 1 ? batch[0]! : Buffer.concat(batch, batched);
    batch = [];
    batched = 0;
    if (!sock.write(b)) {
      await new Promise<void>((r) => {
        sock.once('drain', r);
        waiters.push(r);
      });
    }
  };
  return {
    write: async (b) => {
      if (failure) throw failure;
      batch.push(b);
      batched += b.length;
      if (batched >= 64 * 1024) await flush();
      if (failure) throw failure;
    },
    finish: async (timeoutMs) => {
      await flush();
      const deadline = Date.now() + timeoutMs;
      while (!ack) {
        if (failure) throw failure;
        if (Date.now() > deadline) throw new Error('the migration target did not acknowledge the stream');
        await Promise.race([wait(), new Promise((r) => setTimeout(r, 50))]);
      }
      sock.end();
    },
    abort: () => sock.destroy(),
  };
}
