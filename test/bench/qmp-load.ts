/** Load generators for QMP endpoints (Unix socket or WebSocket), shared by the benchmarks. */
import net from 'node:net';
import { WebSocket } from 'ws';

export interface Conn {
  /** Sends raw bytes; resolves when `n` more reply lines have arrived. */
  roundTrip(payload: string, n: number): Promise<void>;
  close(): void;
}

export async function unixConn(path: string): Promise<Conn> {
  const s = net.connect(path);
  await new Promise<void>((r, j) => s.once('connect', r).once('error', j));
  let pending = 0;
  let wake: (() => void) | undefined;
  let lines = 0;
  s.on('data', (d: Buffer) => {
    for (let i = d.indexOf(10); i >= 0; i = d.indexOf(10, i + 1)) lines++;
    if (wake && lines >= pending) {
      const w = wake;
      wake = undefined;
      w();
    }
  });
  const conn: Conn = {
    roundTrip(payload, n) {
      pending = lines + n;
      return new Promise<void>((r) => {
        wake = r;
        s.write(payload);
      });
    },
    close: () => s.destroy(),
  };
  await conn.roundTrip('', 1); // greeting
  await conn.roundTrip('{"execute":"qmp_capabilities"}', 1);
  return conn;
}

/** WebSocket in text mode (one message per frame) or binary mode (QEMU byte stream). */
export async function wsConn(url: string, binary: boolean): Promise<Conn> {
  const ws = new WebSocket(url, binary ? ['binary'] : []);
  let lines = 0;
  let pending = 0;
  let wake: (() => void) | undefined;
  ws.on('message', (d: Buffer) => {
    if (binary) for (let i = d.indexOf(10); i >= 0; i = d.indexOf(10, i + 1)) lines++;
    else lines++;
    if (wake && lines >= pending) {
      const w = wake;
      wake = undefined;
      w();
    }
  });
  const opened = new Promise<void>((r, j) => ws.once('open', r).once('error', j));
  pending = 1;
  const greeting = new Promise<void>((r) => (wake = r));
  await opened;
  await greeting;
  const conn: Conn = {
    roundTrip(payload, n) {
      pending = lines + n;
      return new Promise<void>((r) => {
        wake = r;
        if (binary) ws.send(Buffer.from(payload));
        else for (let i = 0; i < n; i++) ws.send(payload.slice(0, payload.length / n));
      });
    },
    close: () => ws.terminate(),
  };
  await conn.roundTrip('{"execute":"qmp_capabilities"}', 1);
  return conn;
}

export const QUERY_STATUS = '{"execute":"query-status"}';

/**
 * Closed-loop load over Unix sockets with plain callbacks (no promise per request), so the
 * generator spends as little CPU as possible on the 2 cores it shares with the daemon.
 */
export async function unixClosedLoop(path: string, clients: number, ms: number) {
  const socks = await Promise.all(
    Array.from({ length: clients }, async () => {
      const c = await unixConn(path); // connect and negotiate
      c.close();
      return net.connect(path);
    }),
  );
  const lat: number[] = [];
  const negotiated = await Promise.all(
    socks.map(
      (s) =>
        new Promise<net.Socket>((resolve) => {
          let lines = 0;
          s.on('data', function first(d: Buffer) {
            for (let i = d.indexOf(10); i >= 0; i = d.indexOf(10, i + 1)) lines++;
            if (lines >= 2) {
              s.off('data', first);
              resolve(s);
            }
          });
          s.write('{"execute":"qmp_capabilities"}');
        }),
    ),
  );
  const t0 = performance.now();
  const end = t0 + ms;
  await Promise.all(
    negotiated.map(
      (s) =>
        new Promise<void>((resolve) => {
          let sent = performance.now();
          s.on('data', () => {
            const now = performance.now();
            lat.push(now - sent);
            if (now >= end) return resolve();
            sent = now;
            s.write(QUERY_STATUS);
          });
          s.write(QUERY_STATUS);
        }),
    ),
  );
  const secs = (performance.now() - t0) / 1000;
  socks.forEach((s) => s.destroy());
  lat.sort((a, b) => a - b);
  return { rps: lat.length / secs, p50: percentile(lat, 50), p99: percentile(lat, 99), requests: lat.length };
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Sequential round trips on one connection: requests per second. */
export async function sequential(conn: Conn, n: number): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await conn.roundTrip(QUERY_STATUS, 1);
  return n / ((performance.now() - t0) / 1000);
}

/** Pipelined: `n` requests written at once in batches, replies counted: requests per second. */
export async function pipelined(conn: Conn, n: number, batch = 1000): Promise<number> {
  const payload = QUERY_STATUS.repeat(batch);
  const t0 = performance.now();
  const rounds = Math.ceil(n / batch);
  for (let i = 0; i < rounds; i++) await conn.roundTrip(payload, batch);
  return (rounds * batch) / ((performance.now() - t0) / 1000);
}

/** `clients` connections each doing sequential requests for `ms`: throughput and latency. */
export async function concurrent(open: () => Promise<Conn>, clients: number, ms: number) {
  const conns = await Promise.all(Array.from({ length: clients }, open));
  const lat: number[] = [];
  const end = performance.now() + ms;
  const t0 = performance.now();
  await Promise.all(
    conns.map(async (c) => {
      while (performance.now() < end) {
        const s = performance.now();
        await c.roundTrip(QUERY_STATUS, 1);
        lat.push(performance.now() - s);
      }
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  conns.forEach((c) => c.close());
  lat.sort((a, b) => a - b);
  return { rps: lat.length / secs, p50: percentile(lat, 50), p99: percentile(lat, 99), requests: lat.length };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}
