/**
 * sevd-qemu's side of the launch socket (docs/interface.md §15): a QMP connection read line
 * by line until the hand-over, after which its bytes belong to libvirt's monitor untouched.
 */
import net from 'node:net';

export class LaunchConnection {
  private buf = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  closed = false;
  /** The text of the last message read (sevd writes it in QEMU's format). */
  lastLine = '';

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => undefined);
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  static connect(path: string): Promise<LaunchConnection> {
    return new Promise((resolve, reject) => {
      const s = net.connect(path);
      s.once('connect', () => {
        s.off('error', reject);
        resolve(new LaunchConnection(s));
      });
      s.once('error', reject);
    });
  }

  /** The next JSON message (events skipped), or an error when the connection ends. */
  async message(): Promise<Record<string, any>> {
    for (;;) {
      const i = this.buf.indexOf(0x0a);
      if (i >= 0) {
        const line = this.buf.subarray(0, i).toString('utf8').trim();
        this.buf = this.buf.subarray(i + 1);
        if (!line) continue;
        const m = JSON.parse(line) as Record<string, any>;
        if (m['event'] === undefined) {
          this.lastLine = line;
          return m;
        }
        continue;
      }
      if (this.closed) throw new Error('sevd closed the launch connection');
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }

  async execute(command: string, args?: unknown): Promise<Record<string, any>> {
    this.socket.write(JSON.stringify(args === undefined ? { execute: command } : { execute: command, arguments: args }) + '\r\n');
    return this.message();
  }

  /** Greeting and negotiation. */
  async negotiate(): Promise<Record<string, any>> {
    const greeting = await this.message();
    const r = await this.execute('qmp_capabilities');
    if (r['error']) throw new Error(r['error'].desc);
    return greeting;
  }

  /** Whatever arrived after the last message read, handed to the new owner of the stream. */
  takeRest(): Buffer {
    const rest = this.buf;
    this.buf = Buffer.alloc(0);
    this.socket.removeAllListeners('data');
    return rest;
  }

  close(): void {
    this.socket.destroy();
  }
}
