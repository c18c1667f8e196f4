/**
 * Raw HTTP/1.1 over a real TCP socket: sends exactly the bytes a hostile client would (bad
 * percent-encoding, forged Host headers, upgrade requests) and reads the status line, which
 * `fetch` would refuse to send or normalise away. Also reads a process's memory high-water
 * mark, for tests that bound what a client can make the daemon allocate.
 */
import net from 'node:net';
import { readFileSync } from 'node:fs';

export interface RawResponse {
  status: number;
  head: string;
  body: string;
}

/** Sends `request` (CRLFs included) to 127.0.0.1:port and reads until the server closes or `timeoutMs`. */
export function rawHttp(port: number, request: string, timeoutMs = 5000): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let data = '';
    const done = () => {
      clearTimeout(timer);
      s.destroy();
      const end = data.indexOf('\r\n\r\n');
      const head = end >= 0 ? data.slice(0, end) : data;
      const m = /^HTTP\/1\.1 (\d{3})/.exec(head);
      if (!m) return reject(new Error(`no HTTP status line in ${JSON.stringify(data.slice(0, 200))}`));
      resolve({ status: Number(m[1]), head, body: end >= 0 ? data.slice(end + 4) : '' });
    };
    const timer = setTimeout(done, timeoutMs);
    s.setEncoding('latin1');
    s.on('data', (d: string) => {
      data += d;
      // An upgrade answered with 101 stays open: the head is all we want.
      if (data.startsWith('HTTP/1.1 101') && data.includes('\r\n\r\n')) done();
    });
    s.on('end', done);
    s.on('error', (e) => (data ? done() : reject(e)));
    s.write(Buffer.from(request, 'latin1'));
  });
}

/** A WebSocket upgrade request for `path` with the given extra header lines. */
export function upgradeRequest(path: string, port: number, headers: Record<string, string> = {}): string {
  const all: Record<string, string> = {
    Host: `127.0.0.1:${port}`,
    Connection: 'Upgrade',
    Upgrade: 'websocket',
    'Sec-WebSocket-Version': '13',
    'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
    ...headers,
  };
  return `GET ${path} HTTP/1.1\r\n${Object.entries(all).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
}

/** A plain GET for `path` with the given extra header lines. */
export function getRequest(path: string, port: number, headers: Record<string, string> = {}): string {
  const all: Record<string, string> = { Host: `127.0.0.1:${port}`, Connection: 'close', ...headers };
  return `GET ${path} HTTP/1.1\r\n${Object.entries(all).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
}

/** Resident set size and its high-water mark of a process, in MiB (Linux /proc). */
export function memoryOf(pid: number): { rssMiB: number; peakMiB: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`\\n${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN);
  return { rssMiB: kb('VmRSS') / 1024, peakMiB: kb('VmHWM') / 1024 };
}
