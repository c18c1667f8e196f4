/**
 * A typed QMP client: negotiation (OOB when offered), commands with ids and timeouts,
 * pipelining, events as an async iterator, QMPError for error replies. Works against sevd
 * and QEMU alike; `QgaClient` speaks the guest-agent variant (no greeting, no negotiation).
 */
import { openTransport, type MessageTransport } from './transport.js';

export class QMPError extends Error {
  constructor(readonly cls: string, readonly desc: string, readonly command: string) {
    super(`${command}: ${cls}: ${desc}`);
    this.name = 'QMPError';
  }
}

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp: { seconds: number; microseconds: number };
}

export interface Greeting {
  QMP: { version: { qemu: { major: number; minor: number; micro: number }; package: string }; capabilities: string[] };
}

export interface ConnectOptions {
  /** Per-command timeout in ms (default 30 s). */
  timeoutMs?: number;
  /** Enable OOB when the server offers it (default true). */
  oob?: boolean;
  headers?: Record<string, string>;
  protocols?: string[];
}

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout; command: string };

class BaseClient {
  protected readonly pending = new Map<string, Pending>();
  private seq = 0;
  private readonly eventQueue: QmpEvent[] = [];
  private eventWaiters: ((e: QmpEvent | null) => void)[] = [];
  closed = false;
  protected onUntagged?: (msg: Record<string, unknown>) => void;

  protected constructor(protected readonly t: MessageTransport, protected readonly timeoutMs: number) {
    t.onClose((err) => this.shutdown(err ?? new Error('connection closed')));
  }

  protected route(msg: Record<string, unknown>): void {
    if (typeof msg['event'] === 'string') {
      const ev = msg as unknown as QmpEvent;
      const w = this.eventWaiters.shift();
      if (w) w(ev);
      else this.eventQueue.push(ev);
      return;
    }
    const id = msg['id'];
    const p = typeof id === 'string' ? this.pending.get(id) : undefined;
    if (!p) return this.onUntagged?.(msg);
    this.pending.delete(id as string);
    clearTimeout(p.timer);
    const err = msg['error'] as { class: string; desc: string } | undefined;
    if (err) p.reject(new QMPError(err.class, err.desc, p.command));
    else p.resolve(msg['return']);
  }

  private shutdown(err: Error): void {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
    for (const w of this.eventWaiters.splice(0)) w(null);
  }

  /** Sends a command; several may be in flight (replies are matched by id). */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, opts: { oob?: boolean; timeoutMs?: number } = {}): Promise<T> {
    if (this.closed) return Promise.reject(new Error('connection closed'));
    const id = `__qmp#${String(++this.seq).padStart(5, '0')}`;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${command}: no reply within ${opts.timeoutMs ?? this.timeoutMs} ms`));
      }, opts.timeoutMs ?? this.timeoutMs);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer, command });
      this.t.send(JSON.stringify({ [opts.oob ? 'exec-oob' : 'execute']: command, ...(args ? { arguments: args } : {}), id }));
    });
  }

  /** Events in arrival order; ends when the connection closes. */
  async *events(): AsyncGenerator<QmpEvent> {
    for (;;) {
      const e = this.eventQueue.shift() ?? (await new Promise<QmpEvent | null>((r) => this.eventWaiters.push(r)));
      if (!e) return;
      yield e;
    }
  }

  /** Resolves with the next event named `name` (or any event without a name). */
  async nextEvent(name?: string, timeoutMs = this.timeoutMs): Promise<QmpEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.eventQueue.findIndex((e) => !name || e.event === name);
      if (i >= 0) return this.eventQueue.splice(i, 1)[0]!;
      const left = deadline - Date.now();
      if (left <= 0 || this.closed) throw new Error(`no ${name ?? ''} event within ${timeoutMs} ms`);
      const e = await Promise.race([
        new Promise<QmpEvent | null>((r) => this.eventWaiters.push(r)),
        new Promise<null>((r) => setTimeout(() => r(null), left)),
      ]);
      if (e && (!name || e.event === name)) return e;
      if (e) this.eventQueue.push(e);
    }
  }

  close(): void {
    this.t.close();
  }
}

export class QmpClient extends BaseClient {
  greeting!: Greeting;
  oobEnabled = false;

  static async connect(target: string, opts: ConnectOptions = {}): Promise<QmpClient> {
    const t = await openTransport(target, opts);
    const c = new QmpClient(t, opts.timeoutMs ?? 30000);
    const greeting = new Promise<Greeting>((resolve, reject) => {
      c.onUntagged = (msg) => (msg['QMP'] ? resolve(msg as unknown as Greeting) : reject(new Error(`expected a greeting, got ${JSON.stringify(msg)}`)));
    });
    t.onMessage((text) => c.route(JSON.parse(text)));
    c.greeting = await greeting;
    c.onUntagged = undefined;
    const offered = c.greeting.QMP.capabilities ?? [];
    const enable = opts.oob !== false && offered.includes('oob') ? ['oob'] : [];
    await c.execute('qmp_capabilities', { enable });
    c.oobEnabled = enable.length > 0;
    return c;
  }

  /** Calls `connect` until it succeeds (a daemon that is still starting). */
  static async connectWithRetry(target: string, opts: ConnectOptions & { attempts?: number; delayMs?: number } = {}): Promise<QmpClient> {
    let last: unknown;
    for (let i = 0; i < (opts.attempts ?? 50); i++) {
      try {
        return await QmpClient.connect(target, opts);
      } catch (e) {
        last = e;
        await new Promise((r) => setTimeout(r, opts.delayMs ?? 100));
      }
    }
    throw last;
  }

  /** HMP passthrough. */
  hmp(commandLine: string): Promise<string> {
    return this.execute<string>('human-monitor-command', { 'command-line': commandLine });
  }
}

export class QgaClient extends BaseClient {
  static async connect(target: string, opts: ConnectOptions = {}): Promise<QgaClient> {
    const t = await openTransport(target, opts);
    const c = new QgaClient(t, opts.timeoutMs ?? 30000);
    t.onMessage((text) => c.route(JSON.parse(text)));
    return c;
  }
}
