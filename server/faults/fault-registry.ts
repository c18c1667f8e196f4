/**
 * Injected faults (docs/interface.md §13): what a management tool's tester asked to go wrong, and
 * the matching that the firmware boundary, the outgoing migration and the monitors ask
 * for. A fault that fires emits SEVD_FAULT on the control monitor and counts in /metrics.
 */
import { QmpError } from '../errors/qmp-error.js';
import { FwStatus, SEV_COMMANDS, type SevCommand } from '../firmware/status.js';
import type { Metrics } from '../observability/metrics.js';
import type { Args } from '../dispatch/dispatcher.js';
import type { OutValue } from '../qmp/json/writer.js';
import { FaultScopes } from './scope.js';

export type FaultTarget = 'firmware' | 'migration' | 'monitor';

interface FirmwareFault {
  target: 'firmware';
  command: SevCommand;
  status: number;
  guest?: string;
  count: number;
  'delay-ms'?: number;
}
interface MigrationFault {
  target: 'migration';
  guest: string;
  'after-pages': number;
  action: 'cut' | 'corrupt' | 'stall';
}
interface MonitorFault {
  target: 'monitor';
  guest?: string;
  action: 'delay' | 'disconnect';
  'delay-ms'?: number;
  count: number;
}
type Fault = FirmwareFault | MigrationFault | MonitorFault;

interface Entry {
  id: number;
  fault: Fault;
  fired: number;
  /** Uses left; Infinity for count 0 (until cleared). */
  remaining: number;
}

export interface FaultEvent {
  id: number;
  target: FaultTarget;
  detail: string;
}

/** An armed migration fault, handed to the outgoing migration it applies to. */
export interface MigrationFaultPlan {
  afterPages: number;
  action: MigrationFault['action'];
  fire(detail: string): void;
}

function statusCode(v: unknown): number {
  if (typeof v === 'number') return v;
  const code = (FwStatus as Record<string, number>)[String(v)];
  if (code === undefined) throw QmpError.generic(`Parameter 'status' expects a firmware status number or name (${Object.keys(FwStatus).join(', ')})`);
  return code;
}

export class FaultRegistry {
  private readonly entries = new Map<number, Entry>();
  /** Which guest the current work is for, and the delay it collected. */
  readonly scopes = new FaultScopes();
  private nextId = 1;

  constructor(private readonly emit: (e: FaultEvent) => void, private readonly metrics?: Metrics) {}

  /** Checks and arms a FAULT (already shaped by the schema); returns its id. */
  add(a: Args): number {
    const fault = { ...a } as unknown as Fault;
    if (fault.target === 'firmware') {
      if (!SEV_COMMANDS.includes(fault.command)) {
        throw QmpError.generic(`Parameter 'command' expects a firmware command (${SEV_COMMANDS.join(', ')})`);
      }
      fault.status = statusCode(a['status']);
    }
    const count = fault.target === 'migration' ? 1 : ((a['count'] as number | undefined) ?? 1);
    if (fault.target !== 'migration') fault.count = count;
    const id = this.nextId++;
    this.entries.set(id, { id, fault, fired: 0, remaining: count === 0 ? Infinity : count });
    return id;
  }

  list(): OutValue[] {
    return [...this.entries.values()].map((e) => ({
      ...(e.fault as unknown as Record<string, OutValue>),
      id: e.id, fired: e.fired, remaining: e.remaining === Infinity ? -1 : e.remaining,
    }));
  }

  /** `id` as the visitor gives an `int`: past 2^53 a bigint, which names no fault. */
  clear(id?: number | bigint): void {
    if (id === undefined) this.entries.clear();
    else if (typeof id === 'bigint' || !this.entries.delete(id)) throw QmpError.generic(`Fault ${id} not found`);
  }

  private fire(e: Entry, detail: string): void {
    e.fired++;
    this.metrics?.faults.inc({ target: e.fault.target });
    this.emit({ id: e.id, target: e.fault.target, detail });
  }

  /** Takes one use of the first armed fault that `match` accepts (used up: removed from the active set, kept for query-faults). */
  private take<F extends Fault>(match: (f: Fault) => f is F): { entry: Entry; fault: F } | undefined {
    for (const e of this.entries.values()) {
      if (e.remaining > 0 && match(e.fault)) {
        e.remaining--;
        return { entry: e, fault: e.fault };
      }
    }
    return undefined;
  }

  /** The firmware is about to run `command` for `guest`: the status to fail with (0: none) and a delay. */
  firmware(command: SevCommand, guest: string | null): { status: number; delayMs: number } | undefined {
    const hit = this.take((f): f is FirmwareFault => f.target === 'firmware' && f.command === command && (f.guest === undefined || f.guest === guest));
    if (!hit) return undefined;
    const { status } = hit.fault;
    const delayMs = hit.fault['delay-ms'] ?? 0;
    this.fire(hit.entry, `${command}${guest ? ` for ${guest}` : ''}: ${status === 0 ? 'delayed' : `status ${status}`}${delayMs ? ` after ${delayMs} ms` : ''}`);
    return { status, delayMs };
  }

  /** An outgoing migration of `guest` starts: its armed fault, fired when the plan triggers. */
  migration(guest: string): MigrationFaultPlan | undefined {
    const hit = this.take((f): f is MigrationFault => f.target === 'migration' && f.guest === guest);
    if (!hit) return undefined;
    return { afterPages: hit.fault['after-pages'], action: hit.fault.action, fire: (detail) => this.fire(hit.entry, detail) };
  }

  /** A reply is about to go out on the monitor of `guest` (null: the control monitor). */
  monitor(guest: string | null): { action: MonitorFault['action']; delayMs: number } | undefined {
    const hit = this.take((f): f is MonitorFault => f.target === 'monitor' && (f.guest ?? null) === guest);
    if (!hit) return undefined;
    const delayMs = hit.fault['delay-ms'] ?? 0;
    this.fire(hit.entry, `${guest ?? 'control'} monitor: ${hit.fault.action}${hit.fault.action === 'delay' ? ` ${delayMs} ms` : ' before the reply'}`);
    return { action: hit.fault.action, delayMs };
  }
}
