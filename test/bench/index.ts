/**
 * npm run bench: QMP throughput and latency of sevd, against a real QEMU measured in the
 * same run when qemu-system-x86_64 is installed. Results go to bench-results.json.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { startSevd } from '../helpers/sevd-process.js';
import { qemuAvailable, startQemu } from '../helpers/qemu.js';
import { concurrent, median, percentile, pipelined, sequential, unixClosedLoop, unixConn, wsConn } from './qmp-load.js';
import { RawClient } from '../helpers/raw-client.js';
import { verifyChain } from '../../abi/certs/chain.js';
import { fullLaunchBench, launchUpdateBench, manyGuestsBench } from './sev-bench.js';
import { migrationBench } from './migration-bench.js';
import { snpBench } from './snp-bench.js';
import { connectionLoad, launchSoak } from './ops-bench.js';
import { hostileBench } from './hostile-bench.js';
import { libvirtBench } from './libvirt-bench.js';

const RUNS = 3;
const results: Record<string, unknown> = { date: new Date().toISOString(), node: process.version };

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

function report(name: string, value: unknown): void {
  results[name] = value;
  console.log(`${name.padEnd(44)} ${typeof value === 'number' ? value.toFixed(1) : JSON.stringify(value)}`);
}

/** QEMU's monitor serves one client at a time, so the concurrent part runs only against sevd. */
async function qmpSuite(label: string, path: string, concurrentClients = true): Promise<{ seq: number; pipe: number }> {
  const seqRuns: number[] = [];
  const pipeRuns: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const c = await unixConn(path);
    seqRuns.push(await sequential(c, 3000));
    pipeRuns.push(await pipelined(c, 30000));
    c.close();
  }
  report(`${label}: unix sequential query-status /s`, median(seqRuns));
  report(`${label}: unix pipelined query-status /s`, median(pipeRuns));
  if (concurrentClients) {
    // Closed loop, 100 clients, 3 runs of 3 s; medians of the runs' figures. The generator
    // shares the 2 cores with the daemon, so its own CPU use shows in the tail.
    const runs = [];
    for (let i = 0; i < RUNS; i++) runs.push(await unixClosedLoop(path, 100, 3000));
    report(`${label}: unix 100 clients /s`, median(runs.map((r) => r.rps)));
    report(`${label}: unix 100 clients p50 ms`, median(runs.map((r) => r.p50)));
    report(`${label}: unix 100 clients p99 ms`, median(runs.map((r) => r.p99)));
    report(`${label}: unix 100 clients p99 ms per run`, runs.map((r) => Number(r.p99.toFixed(2))));
  }
  return { seq: median(seqRuns), pipe: median(pipeRuns) };
}

/** One client floods 100 MB of garbage while 10 others measure latency. */
async function flood(path: string) {
  const victim = net.connect(path);
  let cutOff = false;
  let lastError = '';
  let sent = 0;
  victim.on('data', (d) => {
    const s = d.toString();
    const m = /"desc": "(sevd: [^"]*)"/.exec(s);
    if (m) lastError = m[1]!;
  });
  const closed = new Promise<void>((r) => victim.on('close', () => { cutOff = true; r(); }));
  victim.on('error', () => undefined);
  const chunk = randomBytes(1 << 20);
  const floodDone = (async () => {
    while (sent < 100 * (1 << 20) && !cutOff) {
      if (!victim.write(chunk)) await Promise.race([new Promise((r) => victim.once('drain', r)), closed]);
      sent += chunk.length;
    }
  })();
  const during = await concurrent(() => unixConn(path), 10, 2000);
  await Promise.race([floodDone, new Promise((r) => setTimeout(r, 10000))]);
  victim.destroy();
  return { cutOff, error: lastError, bytesSentBeforeCut: sent, p50: during.p50, p99: during.p99 };
}

/** Issue 3: chain verifications per second (emulated and real AMD chains) and PDH_GEN latency. */
async function platformBench(controlPath: string): Promise<void> {
  const c = await RawClient.connect(controlPath);
  await c.negotiate();
  const r = (await c.execute('sev-export-certs')).return;
  const b = (k: string) => Buffer.from(r[k], 'base64');
  const emulated = { ark: b('ark'), ask: b('ask'), cek: b('cek'), oca: b('oca'), pek: b('pek'), pdh: b('pdh') };
  const F = 'test/fixtures';
  const chip = (n: string) => readFileSync(`${F}/chips/rome/${n}.cert`);
  const rome = { ark: readFileSync(`${F}/amd-roots/rome/ark.cert`), ask: readFileSync(`${F}/amd-roots/rome/ask.cert`), cek: chip('cek'), oca: chip('oca'), pek: chip('pek'), pdh: chip('pdh') };
  for (const [name, chain] of [['emulated milan', emulated], ['real rome', rome]] as const) {
    const rates: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      const t0 = performance.now();
      let n = 0;
      while (performance.now() - t0 < 1000) {
        if (!verifyChain(chain).ok) throw new Error('chain does not verify');
        n++;
      }
      rates.push(n / ((performance.now() - t0) / 1000));
    }
    report(`platform: chain verifications /s (${name})`, median(rates));
  }
  const lat: number[] = [];
  for (let i = 0; i < 100; i++) {
    const t0 = performance.now();
    await c.execute('sev-pdh-gen');
    lat.push(performance.now() - t0);
  }
  lat.sort((x, y) => x - y);
  report('platform: PDH_GEN over QMP p50 ms', percentile(lat, 50));
  report('platform: PDH_GEN over QMP p99 ms', percentile(lat, 99));
  await c.close();
}

/**
 * `npm run bench -- SECTION…` runs only those sections (qmp, sev, migration, snp, hostile, libvirt, ops)
 * and merges their figures into an existing bench-results.json; no argument runs them all.
 */
const only = new Set(process.argv.slice(2));
const wanted = (section: string) => only.size === 0 || only.has(section);

async function main(): Promise<void> {
  if (wanted('qmp')) await qmpSection();
  if (wanted('sev')) {
    await launchUpdateBench(report);
    await fullLaunchBench(report);
    await manyGuestsBench(report);
  }
  if (wanted('migration')) await migrationBench(report);
  if (wanted('snp')) await snpBench(report);
  if (wanted('hostile')) await hostileBench(report);
  if (wanted('libvirt')) await libvirtBench(report);
  if (wanted('ops')) {
    const load = await connectionLoad(100, 1000, 10);
    report('ops: 1,000 connections over 100 guests', { held: load.connections, requests: load.requests, rps: Math.round(load.rps), p50: Number(load.p50.toFixed(2)), p99: Number(load.p99.toFixed(2)) });
    const soak = launchSoak(10000);
    report('ops: 10,000 launch/destroy cycles', { seconds: Number(soak.seconds.toFixed(1)), rssWarmMiB: Number(soak.rssWarmMiB.toFixed(1)), rssEndMiB: Number(soak.rssEndMiB.toFixed(1)), contextsLeft: soak.contextsLeft });
  }
  const previous = only.size > 0 && existsSync('bench-results.json') ? JSON.parse(readFileSync('bench-results.json', 'utf8')) : {};
  writeFileSync('bench-results.json', JSON.stringify({ ...previous, ...results }, null, 2) + '\n');
  console.log('\nwritten to bench-results.json');
}

async function qmpSection(): Promise<void> {
  const guests = Array.from({ length: 100 }, (_, i) => ({ name: `g${i}`, memory: '4G', paused: true }));
  const sevd = await startSevd({ guests });
  try {
    await new Promise((r) => setTimeout(r, 1000));
    report('sevd: idle RSS with 100 guests (MiB)', rssMiB(sevd.proc.pid!));
    const ours = await qmpSuite('sevd', sevd.guestQmp('g0'));
    const wsUrl = `ws://127.0.0.1:${sevd.wsPort}/qmp/g0`;
    for (const binary of [false, true]) {
      const mode = binary ? 'ws binary' : 'ws text';
      const c = await wsConn(wsUrl, binary);
      report(`sevd: ${mode} sequential /s`, await sequential(c, 3000));
      report(`sevd: ${mode} pipelined /s`, await pipelined(c, 20000, binary ? 1000 : 200));
      c.close();
      const conc = await concurrent(() => wsConn(wsUrl, binary), 100, 2000);
      report(`sevd: ${mode} 100 clients /s`, conc.rps);
      report(`sevd: ${mode} 100 clients p99 ms`, conc.p99);
    }
    report('sevd: 100 MB garbage flood', await flood(sevd.guestQmp('g1')));
    await platformBench(sevd.controlPath);
    if (qemuAvailable()) {
      const qemu = await startQemu();
      try {
        const theirs = await qmpSuite('qemu 7.2', qemu.qmpPath, false);
        report('ratio sevd/qemu pipelined', ours.pipe / theirs.pipe);
        report('ratio sevd/qemu sequential', ours.seq / theirs.seq);
      } finally {
        await qemu.stop();
      }
    } else {
      report('qemu', 'not installed: no comparison');
    }
  } finally {
    await sevd.stop();
  }
}

await main();
