/**
 * The host under hostile load: a migration peer streaming random, well-framed records into
 * incoming SEV guests (each refused stream followed by a fresh guest) while a client floods
 * `/vcek` with new TCBs. Measured: the daemon's event-loop delay p99 (its own
 * monitorEventLoopDelay, read from /metrics per window) and the control monitor's
 * `query-version` round-trip p99 (timed from a separate process) — the same two figures first on the quiet daemon, in the
 * same run. Goal: control p99 < 50 ms under the load.
 */
import { startSevd, type SevdProcess } from '../helpers/sevd-process.js';
import { control } from '../helpers/migration.js';
import { freePort } from '../helpers/free-port.js';
import { streamHostileRecords } from '../helpers/hostile-peer.js';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const PROBE = fileURLToPath(new URL('./control-probe.js', import.meta.url));

type Report = (name: string, value: unknown) => void;
const WINDOW_MS = 8000;
const RAM = 64 << 20;

/** The daemon's event-loop delay p99 (ms) since the previous scrape; the scrape starts a new window. */
async function loopDelayP99(sevd: SevdProcess): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${sevd.wsPort}/metrics`)).text();
  const m = /^sevd_event_loop_delay_seconds\{quantile="0.99"\} (\S+)$/m.exec(text);
  return m ? Number(m[1]) * 1000 : NaN;
}

/**
 * Sequential `query-version` on the control monitor for `ms`, timed from a process of its
 * own (control-probe.ts): round-trip p50/p99 in ms.
 */
async function probe(sevd: SevdProcess, ms: number): Promise<{ p50: number; p99: number; n: number }> {
  const child = spawn(process.execPath, [PROBE, sevd.controlPath, String(ms)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  await new Promise((r) => child.once('exit', r));
  return JSON.parse(out) as { p50: number; p99: number; n: number };
}

/** New TCBs, 8 requests in flight, until `until`: counts of issued (200) and refused (429). */
async function vcekFlood(sevd: SevdProcess, chip: string, until: number): Promise<Record<number, number>> {
  const counts: Record<number, number> = {};
  let i = 0;
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (performance.now() < until) {
      const n = ++i;
      const r = await fetch(`http://127.0.0.1:${sevd.wsPort}/vcek/v1/Milan/${chip}?blSPL=${n & 0xff}&teeSPL=${(n >> 8) & 0xff}&snpSPL=${(n >> 16) & 0xff}&ucodeSPL=9`);
      await r.arrayBuffer();
      counts[r.status] = (counts[r.status] ?? 0) + 1;
    }
  }));
  return counts;
}

export async function hostileBench(report: Report): Promise<void> {
  const sevd = await startSevd({ guests: [], platform: { generation: 'milan' } });
  try {
    const ctl = await control(sevd);
    const chip = (await ctl.execute('sev-snp-platform-status')).return['chip-id'];
    const pdh = (await ctl.execute('query-sev-capabilities')).return.pdh;
    let seq = 0;
    const incoming = async (): Promise<number> => {
      const port = await freePort();
      const r = await ctl.execute('guest-add', { name: `in${++seq}`, memory: '64M', incoming: `tcp:127.0.0.1:${port}`, 'sev-guest': { policy: 1 } });
      if (r.error) throw new Error(r.error.desc);
      return port;
    };

    await loopDelayP99(sevd); // starts the quiet window
    const quiet = await probe(sevd, WINDOW_MS);
    const quietLoop = await loopDelayP99(sevd);

    const until = performance.now() + WINDOW_MS;
    const [peer, kds, loaded] = await Promise.all([
      streamHostileRecords({ port: await incoming(), durationMs: WINDOW_MS, ramBytes: RAM, targetPdhB64: pdh, seed: 21, nextPort: incoming }),
      vcekFlood(sevd, chip, until),
      probe(sevd, WINDOW_MS),
    ]);
    const loadedLoop = await loopDelayP99(sevd);
    report('hostile: quiet daemon, event-loop delay p99 ms', quietLoop);
    report('hostile: quiet daemon, control query-version p50/p99 ms', [Number(quiet.p50.toFixed(2)), Number(quiet.p99.toFixed(2))]);
    report('hostile: under load, event-loop delay p99 ms', loadedLoop);
    report('hostile: under load, control query-version p50/p99 ms (goal p99 < 50)', [Number(loaded.p50.toFixed(2)), Number(loaded.p99.toFixed(2))]);
    report('hostile: the load (migration peer, /vcek flood)', { migrationMiB: Number((peer.bytes / 2 ** 20).toFixed(1)), records: peer.records, streamsRefused: peer.refused, vcek: kds });
    await ctl.close();
  } finally {
    await sevd.stop();
  }
}
