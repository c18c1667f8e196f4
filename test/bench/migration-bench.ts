/** Issue 6 benchmark: migrating 512 MiB of touched private memory over loopback TCP, and downtime under writes. */
import net from 'node:net';
import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';
import { fwHost, receivingGuest, runningGuest, targetOf } from '../helpers/fw-hosts.js';
import type { OutgoingPacket } from '../../server/firmware/send-receive.js';
import { RawClient } from '../helpers/raw-client.js';
import { freePort } from '../helpers/free-port.js';
import { startSevd, type SevdProcess } from '../helpers/sevd-process.js';

type Report = (name: string, value: unknown) => void;
const MiB = 1 << 20;


/** The ceiling: a plain TCP copy of the same number of bytes over loopback. */
async function plainTcpMBps(bytes: number): Promise<number> {
  const chunk = randomBytes(4 * MiB);
  let got = 0;
  const port = await freePort();
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  const server = net.createServer((s) => s.on('data', (d) => (got += d.length) >= bytes && done()));
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  const c = net.connect(port, '127.0.0.1');
  await new Promise((r) => c.once('connect', r));
  const t0 = performance.now();
  for (let sent = 0; sent < bytes; sent += chunk.length) if (!c.write(chunk)) await new Promise((r) => c.once('drain', r));
  await finished;
  const secs = (performance.now() - t0) / 1000;
  c.destroy();
  server.close();
  return bytes / 1e6 / secs;
}

async function ctl(s: SevdProcess) {
  const c = await RawClient.connect(s.controlPath);
  await c.negotiate();
  return c;
}

export async function migrateOnce(touchMiB: number, writeMBps: number) {
  const A = await startSevd({ guests: [] });
  const B = await startSevd({ guests: [] });
  try {
    const ca = await ctl(A);
    const cb = await ctl(B);
    await ca.execute('guest-add', { name: 'vm', memory: '1G', 'sev-guest': { policy: 1 } });
    const agent = await RawClient.connect(A.guestQga('vm'));
    const block = randomBytes(MiB).toString('base64');
    for (let i = 0; i < touchMiB; i++) await agent.execute('guest-memory-write', { gpa: 0x1000000 + i * MiB, data: block });
    const port = await freePort();
    await cb.execute('guest-add', { name: 'vm', memory: '1G', incoming: `tcp:127.0.0.1:${port}`, 'sev-guest': { policy: 1 } });
    const g = await RawClient.connect(A.guestQmp('vm'));
    await g.negotiate();
    const caps = (await cb.execute('query-sev-capabilities')).return;
    await g.execute('migrate-set-parameters', { 'sev-pdh': caps.pdh, 'sev-plat-cert': caps['cert-chain'], 'max-bandwidth': 0 });
    let writing = writeMBps > 0;
    const writer = (async () => {
      const piece = randomBytes(100 * 1024).toString('base64');
      const every = (100 * 1024) / (writeMBps * 1e6) * 1000;
      for (let i = 0; writing; i++) {
        const r = await agent.execute('guest-memory-write', { gpa: 0x1000000 + ((i * 100 * 1024) % (touchMiB * MiB)), data: piece });
        if (!('return' in r)) break;
        await new Promise((res) => setTimeout(res, every));
      }
    })();
    const t0 = performance.now();
    await g.execute('migrate', { uri: `tcp:127.0.0.1:${port}` });
    let info: any;
    for (;;) {
      info = (await g.execute('query-migrate')).return;
      if (info.status === 'completed' || info.status === 'failed') break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const secs = (performance.now() - t0) / 1000;
    writing = false;
    await writer;
    if (info.status !== 'completed') throw new Error(`migration failed: ${info['error-desc']}`);
    await Promise.all([agent.close(), g.close(), ca.close(), cb.close()]);
    return { MBps: (touchMiB * MiB) / 1e6 / secs, downtime: info.downtime as number, passes: info.ram['dirty-sync-count'] as number };
  } finally {
    await A.stop();
    await B.stop();
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * The firmware's share of a migrated page, in one process without I/O: batched SEND_UPDATE_DATA
 * and RECEIVE_UPDATE_DATA against the per-page node:crypto contexts they replaced (XTS
 * decipher + CTR cipher + HMAC object per page), measured in the same run.
 */
export function pageCryptoCosts(pages = 8192): { send: number; receive: number; perPageContexts: number; hmacOnly: number } {
  const A = fwHost('milan', 55, 64 << 20);
  const B = fwHost('milan', 55, 64 << 20);
  const src = runningGuest(A, 0);
  const block = randomBytes(1 << 20);
  for (let i = 0; i < pages / 256; i++) src.m.guestWrite(i << 20, block);
  const start = A.sr.sendStart(src.handle, targetOf(B), { len: 128 });
  const packets: OutgoingPacket[] = Array.from({ length: pages }, (_, i) => ({ gpa: i * 4096, len: 4096, header: Buffer.alloc(52), trans: Buffer.alloc(4096) }));
  const usPerPage = (f: () => void) => {
    const t0 = performance.now();
    f();
    return ((performance.now() - t0) * 1000) / pages;
  };
  const send: number[] = [];
  const receive: number[] = [];
  const perPage: number[] = [];
  const hmac: number[] = [];
  const key32 = randomBytes(32);
  const key16 = randomBytes(16);
  for (let run = 0; run < 3; run++) {
    send.push(usPerPage(() => {
      for (let i = 0; i < pages; i += 16) A.sr.sendUpdateDataPages(src.handle, src.m, packets.slice(i, i + 16));
    }));
    const dst = receivingGuest(B, A, start, run + 1);
    receive.push(usPerPage(() => {
      for (let i = 0; i < pages; i += 16) B.sr.receiveUpdateDataPages(dst.handle, dst.m, packets.slice(i, i + 16));
    }));
    perPage.push(usPerPage(() => {
      for (const p of packets) {
        const plain = createDecipheriv('aes-128-xts', key32, p.header.subarray(0, 16)).update(p.trans);
        const ct = createCipheriv('aes-128-ctr', key16, p.header.subarray(4, 20)).update(plain);
        createHmac('sha256', key16).update(p.header.subarray(0, 29)).update(ct).digest();
      }
    }));
    hmac.push(usPerPage(() => {
      for (const p of packets) createHmac('sha256', key16).update(p.trans).digest();
    }));
  }
  return { send: median(send), receive: median(receive), perPageContexts: median(perPage), hmacOnly: median(hmac) };
}

export async function migrationBench(report: Report): Promise<void> {
  const costs = pageCryptoCosts();
  report('migration: SEND_UPDATE_DATA, batched, µs/page', costs.send);
  report('migration: RECEIVE_UPDATE_DATA, batched, µs/page', costs.receive);
  report('migration: per-page node:crypto contexts (old path), µs/page', costs.perPageContexts);
  report('migration: of which HMAC-SHA256 of the page alone, µs/page', costs.hmacOnly);
  // Both hosts share the 2 cores: even with perfect overlap and free I/O, a page costs at least
  // (send + receive) / 2 of wall time.
  report('migration: ceiling from firmware cost on 2 cores, MB/s', 4096 / ((costs.send + costs.receive) / 2));
  report('migration: plain TCP copy of 512 MiB, MB/s (ceiling)', await plainTcpMBps(512 * MiB));
  const idle = await migrateOnce(512, 0);
  report('migration: 512 MiB private memory over TCP, MB/s', idle.MBps);
  report('migration: downtime with an idle guest, ms', idle.downtime);
  const busy = await migrateOnce(512, 10);
  report('migration: 512 MiB, guest writing 10 MB/s: MB/s', busy.MBps);
  report('migration: downtime with the guest writing 10 MB/s, ms', busy.downtime);
  report('migration: passes with the guest writing', busy.passes);
}
