/** A byte-level QMP test client over a real socket: sends exact bytes, collects lines. */
import net from 'node:net';

export class RawClient {
  private buf = '';
  readonly lines: string[] = [];
  private waiters: (() => void)[] = [];
  closed = false;
  private lastData = Date.now();

  private constructor(readonly socket: net.Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      this.lastData = Date.now();
      this.buf += d;
      let i;
      while ((i = this.buf.indexOf('\r\n')) >= 0) {
        this.lines.push(this.buf.slice(0, i));
        this.buf = this.buf.slice(i + 2);
      }
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => undefined);
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Bytes received after the last CRLF (a line without CRLF would stay here). */
  get partial(): string {
    return this.buf;
  }

  static connect(path: string | { port: number; host?: string }): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = typeof path === 'string' ? net.connect(path) : net.connect(path.port, path.host ?? '127.0.0.1');
      s.once('connect', () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }

  send(data: string | Uint8Array): void {
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  /** Next line, waiting up to `timeoutMs`. */
  async next(timeoutMs = 5000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (this.lines.length === 0) {
      if (this.closed) throw new Error('connection closed');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timeout waiting for a line');
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
    return this.lines.shift()!;
  }

  async nextJson(timeoutMs = 5000): Promise<any> {
    return JSON.parse(await this.next(timeoutMs));
  }

  /** Lines until the connection has been quiet for `quietMs` (at most `maxMs`). */
  async drain(quietMs = 120, maxMs = 5000): Promise<string[]> {
    const start = Date.now();
    this.lastData = Math.max(this.lastData, start);
    while (Date.now() - this.lastData < quietMs && Date.now() - start < maxMs) {
      await new Promise((r) => setTimeout(r, 10));
    }
    return this.lines.splice(0);
  }

  /** Sends a command and returns the parsed reply with the given id (events are kept aside). */
  async execute(command: string, args?: unknown, id: unknown = `t${Math.random()}`): Promise<any> {
    this.send(JSON.stringify({ execute: command, ...(args !== undefined ? { arguments: args } : {}), id }) + '\n');
    for (;;) {
      const idx = this.lines.findIndex((l) => {
        const m = JSON.parse(l);
        return 'id' in m && JSON.stringify(m.id) === JSON.stringify(id);
      });
      if (idx >= 0) return JSON.parse(this.lines.splice(idx, 1)[0]!);
      await new Promise<void>((r) => {
        if (this.closed) throw new Error('connection closed');
        const t = setTimeout(r, 5000);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
      if (this.closed && this.lines.length === 0) throw new Error('connection closed');
    }
  }

  /** Reads the greeting and negotiates. */
  async negotiate(): Promise<any> {
    const greeting = await this.nextJson();
    const r = await this.execute('qmp_capabilities');
    if (!('return' in r)) throw new Error('negotiation failed: ' + JSON.stringify(r));
    return greeting;
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((r) => {
      this.socket.once('close', () => r());
      this.socket.end();
    });
  }
}
