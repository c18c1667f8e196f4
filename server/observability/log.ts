/**
 * The daemon's logger: pino, one JSON object per line (for machines, and whenever stdout
 * is not a terminal), or readable lines for a person at a terminal — `time LEVEL message
 * key=value …`, formatted in-process from the same JSON (no worker thread, no dependency).
 */
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const COLOURS: Record<number, string> = { 10: '90', 20: '36', 30: '32', 40: '33', 50: '31', 60: '35' };

const show = (v: unknown) => (typeof v === 'string' && !/\s/.test(v) ? v : JSON.stringify(v));

/** One pino JSON line as a readable line. */
export function prettyLine(json: string, colour: boolean): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(json);
  } catch {
    return json;
  }
  const { level, time, msg, pid: _pid, hostname: _host, ...rest } = o as { level: number; time: number; msg?: string; pid?: number; hostname?: string };
  const name = (LEVELS[level] ?? String(level)).padEnd(5);
  const stamp = new Date(time).toISOString().slice(11, 23);
  const fields = Object.entries(rest).map(([k, v]) => `${k}=${show(v)}`).join(' ');
  const lvl = colour ? `\x1b[${COLOURS[level] ?? '0'}m${name}\x1b[0m` : name;
  return `${stamp} ${lvl} ${msg ?? ''}${fields ? ` ${fields}` : ''}`;
}

export function makeLogger(level: string, format: 'json' | 'pretty', out: NodeJS.WritableStream = process.stdout): Logger {
  const opts = { level, base: { pid: process.pid } };
  if (format === 'json') return pino(opts);
  const colour = (out as { isTTY?: boolean }).isTTY === true;
  let pending = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      pending += chunk.toString();
      let nl;
      while ((nl = pending.indexOf('\n')) >= 0) {
        out.write(prettyLine(pending.slice(0, nl), colour) + '\n');
        pending = pending.slice(nl + 1);
      }
      cb();
    },
  });
  return pino(opts, stream);
}
