/**
 * Prometheus metrics (text exposition format 0.0.4), kept in-process: counters, gauges
 * computed at scrape time, one latency histogram for QMP commands, and the event loop's
 * delay (perf_hooks' monitorEventLoopDelay) as a summary over the time since the previous
 * scrape — reset at each scrape, as prom-client does — so a scraper (or a benchmark) sees
 * what a window of load did to the loop every monitor and peer shares. Each daemon owns
 * one Metrics (its /metrics shows its own guests and commands only).
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';

const LOOP_RESOLUTION_MS = 10;
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

  private loopDelay?: IntervalHistogram;

  /** Starts sampling the event loop's delay (10 ms resolution); idempotent. */
  watchEventLoop(): void {
    if (this.loopDelay) return;
    this.loopDelay = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
    this.loopDelay.enable();
  }

  /** Stops sampling the event loop (the daemon that owns these metrics has stopped). */
  close(): void {
    this.loopDelay?.disable();
    this.loopDelay = undefined;
  }

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
    if (this.loopDelay) {
      const h = this.loopDelay;
      const name = 'sevd_event_loop_delay_seconds';
      out.push(`# HELP ${name} Event loop delay since the previous scrape (monitorEventLoopDelay, beyond its 10 ms sampling interval).`, `# TYPE ${name} summary`);
      // Each sample is the whole interval between two 10 ms timer turns: the delay is what
      // exceeds the 10 ms. An empty window reports 0 rather than NaN/Infinity.
      const sec = (ns: number) => (h.count > 0 && Number.isFinite(ns) ? Math.max(0, ns - LOOP_RESOLUTION_MS * 1e6) / 1e9 : 0);
      for (const q of [0.5, 0.9, 0.99]) out.push(`${name}${labels({ quantile: String(q) })} ${sec(h.percentile(q * 100))}`);
      out.push(`${name}${labels({ quantile: '1' })} ${sec(h.max)}`, `${name}_count ${h.count}`);
      h.reset();
    }
    for (const g of this.gauges) {
      out.push(`# HELP ${g.name} ${g.help}`, `# TYPE ${g.name} gauge`);
      for (const { l, v } of g.read()) out.push(`${g.name}${labels(l)} ${v}`);
    }
    return out.join('\n') + '\n';
  }
}

