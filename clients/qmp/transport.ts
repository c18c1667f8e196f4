/**
 * Client transports: a byte stream (Unix socket, TCP, WebSocket in `binary` mode) split into
 * lines, or WebSocket text mode with one message per frame. Both deliver whole messages.
 */
import net from 'node:net';
import { WebSocket } from 'ws';

export interface MessageTransport {
  send(text: string): void;
  onMessage(fn: (text: string) => void): void;
  onClose(fn: (err?: Error) => void): void;
  close(): void;
}

/** `unix:PATH` or a path, `tcp:HOST:PORT`, `ws://…` / `wss://…` (text mode), `ws+binary://…` (QEMU's byte stream). */
export async function openTransport(target: string, opts: { headers?: Record<string, string>; protocols?: string[] } = {}): Promise<MessageTransport> {
  if (/^wss?(\+binary)?:\/\//.test(target)) {
    const binary = target.includes('+binary');
    const url = target.replace('+binary', '');
    const ws = new WebSocket(url, [...(binary ? ['binary'] : []), ...(opts.protocols ?? [])], { headers: opts.headers });
    const queued: string[] = [];
    let deliver: ((t: string) => void) | undefined;
    let buf = '';
    ws.on('message', (d: Buffer) => {
      const texts: string[] = [];
      if (binary) {
        buf += d.toString('latin1');
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          texts.push(buf.slice(0, i).replace(/\r$/, ''));
          buf = buf.slice(i + 1);
        }
      } else texts.push(d.toString());
      for (const t of texts) (deliver ? deliver(t) : queued.push(t));
    });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('unexpected-response', (_q, res) => reject(new Error(`WebSocket upgrade refused: HTTP ${res.statusCode}`)));
      ws.once('error', reject);
    });
    return {
      send: (text) => ws.send(binary ? Buffer.from(text + '\r\n') : text),
      onMessage: (fn) => {
        deliver = fn;
        for (const t of queued.splice(0)) fn(t);
      },
      onClose: (fn) => ws.on('close', () => fn()),
      close: () => ws.close(),
    };
  }
  const tcp = /^tcp:(.*):(\d+)$/.exec(target);
  const sock = tcp ? net.connect(Number(tcp[2]), tcp[1]) : net.connect(target.replace(/^unix:/, ''));
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', () => resolve());
    sock.once('error', reject);
  });
  sock.setEncoding('latin1');
  let buf = '';
  let deliver: ((t: string) => void) | undefined;
  const queued: string[] = [];
  sock.on('data', (d: string) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i).replace(/\r$/, '');
      buf = buf.slice(i + 1);
      if (line) (deliver ? deliver(line) : queued.push(line));
    }
  });
  return {
    send: (text) => sock.write(text + '\n'),
    onMessage: (fn) => {
      deliver = fn;
      for (const t of queued.splice(0)) fn(t);
    },
    onClose: (fn) => {
      sock.on('error', (e) => fn(e));
      sock.on('close', () => fn());
    },
    close: () => sock.end(),
  };
}
