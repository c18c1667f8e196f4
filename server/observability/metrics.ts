/**
 * Prometheus metrics (text exposition format 0.0.4), kept in-process: counters, gauges
 * computed at scrape time, and one latency histogram for QMP commands.
 */
const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5];

function labels(l: Record<string, string>): string {
  const parts = Object.entries(l).map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

class Counter {
  readonly values = new Map<string, { l: Record<string, string>; v: number }>();
  inc(l: Record<string, string>, by = 1): void {
    this.incKey(labels(l), l, by);
  }
  /** Hot paths pass a cheap key of their own and build the labels only once. */
  incKey(key: string, l: Record<string, string> | (() => Record<string, string>), by = 1): void {
    const e = this.values.get(key);
    if (e) e.v += by;
    else this.values.set(key, { l: typeof l === 'function' ? l() : l, v: by });
  }
}

class Histogram {
  readonly series = new Map<string, { l: Record<string, string>; counts: number[]; sum: number; n: number }>();
  observe(l: Record<string, string>, seconds: number, key = labels(l)): void {
    const k = key;
    let s = this.series.get(k);
    if (!s) this.series.set(k, (s = { l, counts: BUCKETS.map(() => 0), sum: 0, n: 0 }));
    for (let i = 0; i < BUCKETS.length; i++) if (seconds <= BUCKETS[i]!) s.counts[i]!++;
    s.sum += seconds;
    s.n++;
  }
}

export class Metrics {
  readonly commands = new Counter();
  readonly latency = new Histogram();
  readonly firmware = new Counter();
  readonly migrationBytes = new Counter();
  readonly rejectedConnections = new Counter();
  /** Injected faults that fired, by target. */
  readonly faults = new Counter();
  /** Requests refused by access rules: read-only tokens, path confinement. */
  readonly refusals = new Counter();
  /** Gauges read at scrape time. */
  private readonly gauges: { name: string; help: string; read: () => { l: Record<string, string>; v: number }[] }[] = [];

  gauge(name: string, help: string, read: () => { l: Record<string, string>; v: number }[]): void {
    this.gauges.push({ name, help, read });
  }

  command(monitor: string, command: string, result: 'ok' | 'error', seconds: number): void {
    this.commands.incKey(`${monitor}\0${command}\0${result}`, () => ({ monitor, command, result }));
    this.latency.observe({ monitor }, seconds, monitor);
  }

  render(): string {
    const out: string[] = [];
    const counter = (name: string, help: string, c: Counter) => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`);
      for (const { l, v } of c.values.values()) out.push(`${name}${labels(l)} ${v}`);
    };
    counter('sevd_qmp_commands_total', 'QMP commands executed, by monitor kind, command and result.', this.commands);
    out.push('# HELP sevd_qmp_command_duration_seconds QMP command latency.', '# TYPE sevd_qmp_command_duration_seconds histogram');
    for (const s of this.latency.series.values()) {
      BUCKETS.forEach((b, i) => out.push(`sevd_qmp_command_duration_seconds_bucket${labels({ ...s.l, le: String(b) })} ${s.counts[i]}`));
      out.push(`sevd_qmp_command_duration_seconds_bucket${labels({ ...s.l, le: '+Inf' })} ${s.n}`);
      out.push(`sevd_qmp_command_duration_seconds_sum${labels(s.l)} ${s.sum}`, `sevd_qmp_command_duration_seconds_count${labels(s.l)} ${s.n}`);
    }
    counter('sevd_firmware_commands_total', 'Emulated SEV firmware commands, by command and status.', this.firmware);
    counter('sevd_migration_bytes_total', 'Migration stream bytes, by direction.', this.migrationBytes);
    counter('sevd_rejected_connections_total', 'Connections refused by a limit, by reason.', this.rejectedConnections);
    counter('sevd_faults_fired_total', 'Injected faults that fired, by target.', this.faults);
    counter('sevd_access_refusals_total', 'Commands, connections and file names refused by access rules, by reason.', this.refusals);
    for (const g of this.gauges) {
      out.push(`# HELP ${g.name} ${g.help}`, `# TYPE ${g.name} gauge`);
      for (const { l, v } of g.read()) out.push(`${g.name}${labels(l)} ${v}`);
    }
    return out.join('\n') + '\n';
  }
}

/** The daemon's one registry (firmware and sessions report into it). */
export const metrics = new Metrics();
