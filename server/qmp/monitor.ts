/**
 * A monitor: one command table and the set of connections attached to it (any number,
 * docs/interface.md §4). Events are formatted once and sent to every connection that finished
 * negotiation. What the daemon adds around each command (fault scopes and delays,
 * metrics) comes in as hooks, as fastify's onRequest/onResponse: this floor imports
 * neither faults/ nor observability/.
 */
import type { Dispatcher } from '../dispatch/dispatcher.js';
import type { Version } from '../dispatch/version.js';
import type { CommandReturns } from '../dispatch/schema-types.js';
import { qmpLine, type OutValue } from './json/writer.js';
import type { SessionLimits } from './session.js';

export interface EventSink {
  readonly inCommandMode: boolean;
  sendLine(line: string): void;
}

/** An injected reply fault: hold the reply, or close the connection before it. */
export interface ReplyFault {
  action: 'delay' | 'disconnect';
  delayMs: number;
}

/** What the daemon installs on a monitor; every hook is optional. */
export interface MonitorHooks {
  /** Runs a command (synchronous or not); may wrap it in a scope and hold its outcome. */
  around?<T>(run: () => T | Promise<T>): T | Promise<T>;
  /** A reply to `command` is about to go out. */
  beforeReply?(command: string | undefined): ReplyFault | undefined;
  /** A command finished; `command` is 'unknown' for a name the monitor does not have. */
  onResponse?(command: string, result: 'ok' | 'error', seconds: number): void;
  /** A request refused by an access rule (a read-only credential). */
  onRefusal?(reason: string): void;
}

export interface MonitorOptions<C> {
  kind: 'control' | 'guest' | 'agent' | 'launch';
  dispatcher: Dispatcher<C>;
  /** Everything a handler needs but its session (added per call). */
  context: Omit<C, 'session'>;
  version: Version;
  packageName: string;
  limits?: SessionLimits;
  /** Structured log (one debug line per command). */
  log?: { debug(obj: object, msg: string): void; isLevelEnabled?(level: string): boolean };
  /** The guest this monitor belongs to (null: the daemon's control monitor). */
  owner?: string | null;
  /** The daemon's hooks: fault scope and reply faults, metrics. */
  hooks?: MonitorHooks;
}

export class Monitor<C = unknown> {
  readonly sessions = new Set<EventSink>();
  readonly kind: MonitorOptions<C>['kind'];
  readonly dispatcher: Dispatcher<C>;
  readonly context: Omit<C, 'session'>;
  readonly version: Version;
  readonly packageName: string;
  readonly limits: SessionLimits;
  readonly greeting: string;
  readonly log: MonitorOptions<C>['log'];
  /** Whether per-command debug lines are wanted (checked once, not per command). */
  readonly debugLog: boolean;
  readonly owner: string | null;
  readonly hooks: MonitorHooks;

  constructor(opts: MonitorOptions<C>) {
    this.kind = opts.kind;
    this.dispatcher = opts.dispatcher;
    this.context = opts.context;
    this.version = opts.version;
    this.packageName = opts.packageName;
    this.limits = opts.limits ?? {};
    this.log = opts.log;
    this.debugLog = !!opts.log && (opts.log.isLevelEnabled?.('debug') ?? true);
    this.owner = opts.owner ?? null;
    this.hooks = opts.hooks ?? {};
    this.greeting = qmpLine({ QMP: { version: this.versionInfo(), capabilities: ['oob'] } });
  }

  versionInfo(): CommandReturns<'query-version'> {
    const v = this.version;
    return { qemu: { major: v.major, minor: v.minor, micro: v.micro }, package: this.packageName };
  }

  /** Broadcasts an event with QEMU's timestamp; `data` omitted for events without data. */
  emitEvent(event: string, data?: OutValue, now = Date.now()): void {
    const line = qmpLine({
      event,
      timestamp: { seconds: Math.floor(now / 1000), microseconds: (now % 1000) * 1000 },
      ...(data !== undefined ? { data } : {}),
    });
    for (const s of this.sessions) if (s.inCommandMode) s.sendLine(line);
  }
}
