/**
 * Connection limits shared by every listener: at most `perMonitor` clients on one monitor and
 * `total` in the daemon. A client over a limit is told why and disconnected; nobody else notices.
 */
import type { Metrics } from '../observability/metrics.js';

export interface ConnectionLimits {
  perMonitor: number;
  total: number;
}

export class ConnectionBudget {
  private used = 0;
  readonly byTransport = new Map<string, number>();

  constructor(readonly limits: ConnectionLimits, private readonly metrics?: Metrics) {}

  /** Returns a release function, or the reason the connection is refused. */
  acquire(transport: string, monitorSessions: number): (() => void) | string {
    if (this.used >= this.limits.total) {
      this.metrics?.rejectedConnections.inc({ reason: 'total' });
      return `sevd: too many connections (limit ${this.limits.total})`;
    }
    if (monitorSessions >= this.limits.perMonitor) {
      this.metrics?.rejectedConnections.inc({ reason: 'monitor' });
      return `sevd: too many connections to this monitor (limit ${this.limits.perMonitor})`;
    }
    this.used++;
    this.byTransport.set(transport, (this.byTransport.get(transport) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.used--;
      this.byTransport.set(transport, this.byTransport.get(transport)! - 1);
    };
  }

  get total(): number {
    return this.used;
  }
}
