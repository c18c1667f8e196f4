/** Issue 4 benchmarks: LAUNCH_UPDATE_DATA against OpenSSL's own limits, full launch latency, 500 paused SEV guests. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Platform } from '../../server/firmware/platform.js';
import { GuestFirmware } from '../../server/firmware/guest-firmware.js';
import { MemoryController } from '../../server/memory/memory-controller.js';
import { GuestMemory } from '../../server/memory/guest-memory.js';
import { builtinFirmware } from '../../server/guest/builtin-firmware.js';
import { RawClient } from '../helpers/raw-client.js';
import { startSevd } from '../helpers/sevd-process.js';
import { buildLaunchSession, buildSecretPacket } from '../helpers/guest-owner.js';
import { median, percentile } from './qmp-load.js';

type Report = (name: string, value: unknown) => void;

/** OpenSSL's throughput for 4 KiB blocks in MB/s (1e6 bytes), or undefined without openssl. */
function opensslSpeed(alg: string): number | undefined {
  try {
    const out = execFileSync('openssl', ['speed', '-evp', alg, '-bytes', '4096', '-seconds', '1'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const last = out.trim().split('\n').pop()!;
    const k = Number(/([\d.]+)k\s*$/.exec(last)?.[1]);
    return Number.isFinite(k) ? k / 1000 : undefined;
  } catch {
    return undefined;
  }
}

export async function launchUpdateBench(report: Report): Promise<void> {
  const size = 64 << 20;
  const platform = new Platform({ generation: 'milan', apiMajor: 1, apiMinor: 55, build: 21, seed: null, stateDir: mkdtempSync(join(tmpdir(), 'sevd-bench-')) });
  platform.init();
  const mc = new MemoryController();
  const fw = new GuestFirmware(platform, mc, { maxAsid: 16, minSevAsid: 1 });
  const rates: number[] = [];
  // Run 0 warms up (the helper thread starts on first use); runs 1–3 are measured.
  for (let run = 0; run < 4; run++) {
    const mem = new GuestMemory([{ name: 'pc.ram', base: 0, size }], mc);
    mem.write(0, randomBytes(size));
    const h = fw.launchStart({ handle: 0, policy: 0, godh: null, session: null });
    fw.activate(h, run + 1);
    mem.asid = run + 1;
    const t0 = performance.now();
    fw.launchUpdateData(h, mem, 0, size);
    if (run > 0) rates.push(size / 1e6 / ((performance.now() - t0) / 1000));
  }
  const ours = median(rates);
  report('sev: LAUNCH_UPDATE_DATA MB/s (encrypt + measure)', ours);
  const xts = opensslSpeed('aes-128-xts');
  const sha = opensslSpeed('sha256');
  if (xts && sha) {
    const combined = 1 / (1 / xts + 1 / sha);
    report('openssl speed aes-128-xts MB/s', xts);
    report('openssl speed sha256 MB/s', sha);
    report('openssl combined limit MB/s', combined);
    report('sev: LAUNCH_UPDATE_DATA / combined limit', ours / combined);
  }
}

/** A 2 MiB firmware with the built-in image's GUID table at its end. */
function twoMiBFirmware(dir: string): string {
  const tail = builtinFirmware();
  const img = Buffer.concat([randomBytes(2 * 1024 * 1024 - tail.length), tail]);
  const p = join(dir, 'fw-2m.fd');
  writeFileSync(p, img);
  return p;
}

/**
 * Full launches (add → measure → secret → cont) of SEV guests and of SEV-ES guests with 4
 * vCPUs on the same 2 MiB firmware, interleaved so that both see the same machine noise.
 */
export async function fullLaunchBench(report: Report): Promise<void> {
  const sevd = await startSevd({ guests: [] });
  try {
    const dir = mkdtempSync(join(tmpdir(), 'sevd-launch-'));
    const firmware = twoMiBFirmware(dir);
    const ctl = await RawClient.connect(sevd.controlPath);
    await ctl.negotiate();
    const pdh = Buffer.from((await ctl.execute('query-sev-capabilities')).return.pdh, 'base64');
    const kinds = { sev: { policy: 1, extra: {} }, es: { policy: 5, extra: { smp: 4, cpu: 'EPYC-Milan' } }, snp: { policy: 0, extra: { smp: 4, cpu: 'EPYC-Milan' } } };
    const lat: Record<keyof typeof kinds, number[]> = { sev: [], es: [], snp: [] };
    for (let i = 0; i < 120; i++) {
      const kind = (['sev', 'es', 'snp'] as const)[i % 3]!;
      const { policy, extra } = kinds[kind];
      if (kind === 'snp') {
        // SNP: add (LAUNCH_START, every launch page) → cont (VMSAs, LAUNCH_FINISH); no secret injection.
        const t0 = performance.now();
        const added = await ctl.execute('guest-add', { name: 'l', memory: '1G', firmware, paused: true, ...extra, 'sev-snp-guest': { policy: 0x30000 } });
        if (!('return' in added)) throw new Error(JSON.stringify(added));
        const g = await RawClient.connect(sevd.guestQmp('l'));
        await g.negotiate();
        await g.execute('cont');
        lat.snp.push(performance.now() - t0);
        await g.close();
        await ctl.execute('guest-del', { name: 'l' });
        continue;
      }
      const owner = buildLaunchSession(pdh, policy);
      writeFileSync(join(dir, 'godh.b64'), owner.godhB64);
      writeFileSync(join(dir, 'session.b64'), owner.sessionB64);
      const t0 = performance.now();
      const added = await ctl.execute('guest-add', {
        name: 'l', memory: '1G', firmware, paused: true, ...extra,
        'sev-guest': { policy, 'dh-cert-file': join(dir, 'godh.b64'), 'session-file': join(dir, 'session.b64') },
      });
      if (!('return' in added)) throw new Error(JSON.stringify(added));
      const g = await RawClient.connect(sevd.guestQmp('l'));
      await g.negotiate();
      const blob = (await g.execute('query-sev-launch-measure')).return.data;
      const pkt = buildSecretPacket(owner, blob, [{ guid: '736869e5-84f0-4973-92ec-06879ce3da0b', data: Buffer.from('passphrase') }]);
      const r = await g.execute('sev-inject-launch-secret', { 'packet-header': pkt.header, secret: pkt.secret });
      if (!('return' in r)) throw new Error(JSON.stringify(r));
      await g.execute('cont');
      lat[kind].push(performance.now() - t0);
      await g.close();
      await ctl.execute('guest-del', { name: 'l' });
    }
    for (const l of Object.values(lat)) l.sort((a, b) => a - b);
    report('sev: full launch 2 MiB firmware (add→measure→secret→cont) p50 ms', percentile(lat.sev, 50));
    report('sev: full launch p99 ms', percentile(lat.sev, 99));
    report('es: full launch, 2 MiB firmware, 4 vCPUs, p50 ms', percentile(lat.es, 50));
    report('es: full launch p99 ms', percentile(lat.es, 99));
    report('es: launch p50 / SEV launch p50 (target ≤ 1.2)', percentile(lat.es, 50) / percentile(lat.sev, 50));
    report('snp: full launch, 2 MiB firmware, 4 vCPUs (add→cont) p50 ms', percentile(lat.snp, 50));
    report('snp: launch p50 / SEV launch p50 (target ≤ 2)', percentile(lat.snp, 50) / percentile(lat.sev, 50));
    await ctl.close();
  } finally {
    await sevd.stop();
  }
}

export async function manyGuestsBench(report: Report): Promise<void> {
  // Every ASID for SEV guests: 500 of them must fit (the default keeps a fifth for SEV-ES).
  const sevd = await startSevd({ guests: [], platform: { minSevAsid: 1 } });
  try {
    const ctl = await RawClient.connect(sevd.controlPath);
    await ctl.negotiate();
    const t0 = performance.now();
    for (let i = 0; i < 500; i++) {
      const r = await ctl.execute('guest-add', { name: `s${i}`, memory: '512M', paused: true, 'sev-guest': { policy: 1 } });
      if (!('return' in r)) throw new Error(`guest ${i}: ${JSON.stringify(r)}`);
    }
    report('sev: 500 paused SEV guests, add time s', (performance.now() - t0) / 1000);
    await new Promise((r) => setTimeout(r, 500));
    const rss = Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${sevd.proc.pid}/status`, 'utf8'))![1]) / 1024;
    report('sev: daemon RSS with 500 paused SEV guests (MiB)', rss);
    await ctl.close();
  } finally {
    await sevd.stop();
  }
}
