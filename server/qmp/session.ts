/**
 * One QMP connection: greeting, capabilities negotiation, the in-band queue with replies
 * in request order, out-of-band requests, and error replies for unreadable input. It
 * knows nothing of sockets: a transport feeds it bytes and gives it a sink.
 */
import { JsonStreamer, type StreamItem, type StreamerLimits } from './json/streamer.js';
import { qmpLine, type OutValue } from './json/writer.js';
import type { QObject } from './json/qobject.js';
import { checkRequest, isOobRequest, type Request } from './request.js';
import { Errors, QmpError } from './errors.js';
import type { Monitor } from './monitor.js';
import { readOnlyAllows } from './read-only.js';

let requestSeq = 0;

export interface SessionLimits extends StreamerLimits {
  /** In-band requests queued before reading pauses (QEMU: 8 with OOB). */
  maxPendingCommands?: number;
  /** Consecutive unreadable messages before the connection is closed (0: never). */
  maxConsecutiveErrors?: number;
  /** A client that has not negotiated within this many ms is disconnected (0: never). */
  negotiationTimeoutMs?: number;
}

export interface SessionSink {
  write(data: string): void;
  /** Pushes buffered output now (the negotiation reply must travel alone). */
  flush?(): void;
  close(): void;
  pause?(): void;
  resume?(): void;
}

/** Who is on the other end: the transport, and whether its credential only reads. */
export interface SessionAccess {
  origin: 'unix' | 'websocket' | 'launch';
  readOnly: boolean;
}

export interface CommandContextBase {
  session: QmpSession;
}

type Queued = { item: StreamItem };

/** Input is lexed at most this many bytes at a time... */
const SLICE_BYTES = 4096;
/** ...and a connection yields the event loop after this much lexing in one turn. */
const SLICE_MS = 2;

export class QmpSession {
  private mode: 'negotiation' | 'command';
  private oobEnabled = false;
  private readonly streamer: JsonStreamer;
  private readonly queue: Queued[] = [];
  private busy = false;
  private paused = false;
  private closed = false;
  private consecutiveErrors = 0;
  private readonly maxPending: number;
  private readonly maxErrors: number;
  /** Set by handlers (quit) to close the connection once the reply is written. */
  closeAfterReply = false;
  private flushAfterReply = false;
  private negotiationTimer: NodeJS.Timeout | undefined;
  /** Input received while an earlier chunk is still being lexed in slices. */
  private readonly backlog: Uint8Array[] = [];
  /** Handler context: the monitor's plus this session, built once. */
  private readonly context: Record<string, unknown>;

  readonly access: SessionAccess;

  constructor(readonly monitor: Monitor<any>, private readonly sink: SessionSink, opts: { agent?: boolean; access?: SessionAccess } = {}) {
    this.access = opts.access ?? { origin: 'unix', readOnly: false };
    const limits = monitor.limits;
    this.maxPending = limits.maxPendingCommands ?? 64;
    this.maxErrors = limits.maxConsecutiveErrors ?? 2000;
    this.streamer = new JsonStreamer((item) => this.onMessage(item), limits);
    this.mode = opts.agent ? 'command' : 'negotiation';
    this.context = { ...monitor.context, session: this };
    const timeout = limits.negotiationTimeoutMs ?? 0;
    if (!opts.agent && timeout > 0) {
      this.negotiationTimer = setTimeout(() => {
        if (this.mode !== 'negotiation' || this.closed) return;
        this.sink.write(qmpLine({ error: { class: 'GenericError', desc: 'sevd: capabilities negotiation timed out, closing the connection' } }));
        this.sink.flush?.();
        this.detach();
        this.sink.close();
      }, timeout);
      this.negotiationTimer.unref();
    }
    monitor.sessions.add(this);
    if (!opts.agent) {
      sink.write(monitor.greeting);
      sink.flush?.();
    }
  }

  get inCommandMode(): boolean {
    return this.mode === 'command' && !this.closed;
  }

  get oob(): boolean {
    return this.oobEnabled;
  }

  /**
   * Bytes from the transport, in any chunking. Large chunks are lexed in slices so that one
   * client flooding input cannot hold the event loop: the rest waits for the next turn.
   */
  receive(chunk: Uint8Array): void {
    if (this.closed) return;
    if (this.backlog.length > 0) {
      this.backlog.push(chunk);
      return;
    }
    this.sliceStart = performance.now();
    this.feedSlices(chunk);
  }

  private feedSlices(chunk: Uint8Array): void {
    let at = 0;
    while (at < chunk.length && !this.closed) {
      const end = Math.min(chunk.length, at + SLICE_BYTES);
      this.streamer.feed(chunk.subarray(at, end));
      at = end;
      if (at < chunk.length && this.sliceBudgetSpent()) {
        this.backlog.unshift(chunk.subarray(at));
        this.sink.pause?.();
        setImmediate(() => this.resumeBacklog());
        return;
      }
    }
  }

  private sliceStart = 0;
  private sliceBudgetSpent(): boolean {
    const now = performance.now();
    if (now - this.sliceStart > SLICE_MS) {
      this.sliceStart = now;
      return true;
    }
    return false;
  }

  private resumeBacklog(): void {
    this.sliceStart = performance.now();
    while (this.backlog.length > 0 && !this.closed) {
      const next = this.backlog.shift()!;
      const before = this.backlog.length;
      this.feedSlices(next);
      if (this.backlog.length > before) return; // yielded again
    }
    if (!this.closed && !this.paused) this.sink.resume?.();
  }

  /** One complete message (WebSocket text frame): parse it to the end. */
  receiveMessage(chunk: Uint8Array): void {
    if (this.closed) return;
    this.streamer.feed(chunk);
    this.streamer.flush();
  }

  sendLine(line: string): void {
    if (!this.closed) this.sink.write(line);
  }

  /** The transport went away: drop queued work without replies (as QEMU does). */
  detach(): void {
    this.closed = true;
    this.queue.length = 0;
    this.backlog.length = 0;
    clearTimeout(this.negotiationTimer);
    this.monitor.sessions.delete(this);
  }

  private onMessage(item: StreamItem): void {
    if (this.closed) return;
    if (item.error === undefined && isOobRequest(item.value)) {
      this.handle(item);
      return;
    }
    this.queue.push({ item });
    if (this.queue.length >= this.maxPending && !this.paused) {
      this.paused = true;
      this.sink.pause?.();
    }
    this.drain();
  }

  private drain(): void {
    while (!this.busy && this.queue.length > 0 && !this.closed) {
      const { item } = this.queue.shift()!;
      const pending = this.handle(item);
      if (pending) {
        this.busy = true;
        pending.finally(() => {
          this.busy = false;
          this.drain();
        });
      }
    }
    if (this.paused && this.queue.length < this.maxPending / 2 && !this.closed) {
      this.paused = false;
      this.sink.resume?.();
    }
  }

  /** Handles one message; returns a promise while an asynchronous command (or a delayed reply) is pending. */
  private handle(item: StreamItem): Promise<void> | undefined {
    if (item.error !== undefined) return this.answer(undefined, QmpError.generic(item.error));
    const req = checkRequest(item.value, this.oobEnabled);
    if ('error' in req) return this.answer(req.id, req.error);
    const t0 = performance.now();
    const done = (error: unknown) => this.account(req, t0, error);
    let result: OutValue | Promise<OutValue>;
    try {
      result = this.execute(req);
    } catch (e) {
      done(e);
      return this.answer(req.id, this.asQmpError(req, e), undefined, req.command);
    }
    if (result instanceof Promise) {
      return result.then(
        (r) => {
          done(undefined);
          return this.answer(req.id, undefined, r, req.command);
        },
        (e) => {
          done(e);
          return this.answer(req.id, this.asQmpError(req, e), undefined, req.command);
        },
      );
    }
    done(undefined);
    return this.answer(req.id, undefined, result, req.command);
  }

  /**
   * Sends a reply, unless an injected monitor fault (docs/interface.md §13) delays it (replies keep
   * their order: the queue waits) or closes the connection first (the command has run).
   */
  private answer(id: QObject | undefined, error?: QmpError, value?: OutValue, command?: string): Promise<void> | undefined {
    const fault = this.monitor.hooks.beforeReply?.(command);
    if (!fault) {
      this.reply(id, error, value);
      return undefined;
    }
    if (fault.action === 'disconnect') {
      this.detach();
      this.sink.close();
      return undefined;
    }
    return new Promise<void>((r) => setTimeout(r, fault.delayMs)).then(() => this.reply(id, error, value));
  }

  /** Metrics and one log line per command: a request id, never the arguments (they may hold secrets). */
  private account(req: Request, t0: number, error: unknown): void {
    const seconds = (performance.now() - t0) / 1000;
    const result = error === undefined ? 'ok' : 'error';
    // A label per known command only: unknown names are client-chosen and unbounded.
    const known = this.monitor.dispatcher.lookup(req.command) !== undefined;
    this.monitor.hooks.onResponse?.(known ? req.command : 'unknown', result, seconds);
    if (this.monitor.debugLog) this.monitor.log!.debug(
      { reqId: ++requestSeq, monitor: this.monitor.kind, command: req.command, result, ms: Math.round(seconds * 1e6) / 1000, ...(error instanceof QmpError ? { class: error.cls } : {}) },
      'qmp command',
    );
  }

  private execute(req: Request): OutValue | Promise<OutValue> {
    const dispatcher = this.monitor.dispatcher;
    const negotiating = this.mode === 'negotiation';
    const cmd = negotiating && req.command !== 'qmp_capabilities' ? undefined : dispatcher.lookup(req.command);
    if (!cmd) throw negotiating ? Errors.expectingNegotiation() : Errors.commandNotFound(req.command);
    if (req.oob && !cmd.allowOob) throw Errors.noOob(req.command);
    if (this.access.readOnly && !readOnlyAllows(cmd, req.arguments)) {
      this.monitor.hooks.onRefusal?.('read-only');
      throw Errors.readOnly(req.command);
    }
    const run = () => dispatcher.run(req.command, req.arguments, this.context);
    const around = this.monitor.hooks.around;
    return around ? around(run) : run();
  }

  private asQmpError(req: Request, e: unknown): QmpError {
    if (e instanceof QmpError) return e;
    // An unexpected exception is a bug in sevd; the client still gets a reply.
    process.emitWarning(e instanceof Error ? e : new Error(String(e)), { code: 'SEVD_INTERNAL' });
    return QmpError.generic(`sevd: internal error in ${req.command}`);
  }

  private reply(id: QObject | undefined, error?: QmpError, value?: OutValue): void {
    if (this.closed) return;
    const msg: Record<string, OutValue> = error
      ? { error: { class: error.cls, desc: error.desc } }
      : { return: value ?? {} };
    if (id !== undefined) msg['id'] = id;
    this.sink.write(qmpLine(msg));
    if (error && this.maxErrors > 0 && ++this.consecutiveErrors > this.maxErrors) {
      // Input that only ever produces errors (garbage, a fuzzer) ends the connection.
      this.sink.write(qmpLine({ error: { class: 'GenericError', desc: 'sevd: too many consecutive protocol errors, closing the connection' } }));
      this.sink.flush?.();
      this.detach();
      this.sink.close();
      return;
    }
    if (!error) this.consecutiveErrors = 0;
    if (this.flushAfterReply) {
      this.flushAfterReply = false;
      this.sink.flush?.();
    }
    if (this.closeAfterReply) {
      this.sink.flush?.();
      this.detach();
      this.sink.close();
    }
  }

  /** qmp_capabilities: called by its handler with the validated capability list. */
  negotiate(enable: string[]): void {
    if (this.mode === 'command') throw Errors.negotiationComplete();
    // Every monitor offers exactly ["oob"]; anything else is a schema error caught earlier.
    const unavailable = enable.filter((c) => c !== 'oob');
    if (unavailable.length) throw Errors.capabilityUnavailable(unavailable);
    this.oobEnabled = enable.includes('oob');
    this.mode = 'command';
    clearTimeout(this.negotiationTimer);
    // The reply must not share a write with later output (QEMU monitor/qmp.c: one write per reply).
    this.flushAfterReply = true;
  }
}
