/**
 * Issue 21, hole 5: a migration peer stalled the daemon's event loop. One shared-regions
 * record claiming 2^32 pages held it for 70 s (the control monitor answered after 70 s); an
 * unterminated range list was re-parsed on every chunk (2.9 MB stalled it > 5 min, SIGTERM
 * ignored). Both are replayed here against a real daemon while the control monitor is timed.
 */
import t from 'tap';
import { performance } from 'node:perf_hooks';
import { freePort } from '../helpers/free-port.js';
import { control, monitor, waitStatus } from '../helpers/migration.js';
import { RawClient } from '../helpers/raw-client.js';
import { startSevd } from '../helpers/sevd-process.js';
import {
  connectPeer, forgedReceiveStart, ramSizeRecord, send, sharedEnd, sharedHead, sharedRange, streamHeader, streamHostileRecords,
} from '../helpers/hostile-peer.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** query-version on the control monitor, again and again, until stopped: the latencies (ms). */
function timeControl(ctl: RawClient) {
  let stop = false;
  const lat: number[] = [];
  const run = (async () => {
    while (!stop) {
      const t0 = performance.now();
      await ctl.execute('query-version');
      lat.push(performance.now() - t0);
      await sleep(10);
    }
  })();
  return async () => {
    stop = true;
    await run;
    return lat;
  };
}

async function incomingSevGuest(ctl: RawClient, sevd: Parameters<typeof monitor>[0], name: string, memory: string) {
  const port = await freePort();
  const r = await ctl.execute('guest-add', { name, memory, incoming: `tcp:127.0.0.1:${port}`, 'sev-guest': { policy: 1 } });
  if (!('return' in r)) throw new Error(JSON.stringify(r));
  return { port, g: await monitor(sevd, name) };
}

t.test('a shared range of 2^32 pages: refused at once, the control monitor never waits', async (t) => {
  const sevd = await startSevd({ guests: [] });
  t.teardown(() => sevd.stop().then(() => undefined));
  const ctl = await control(sevd);
  const pdh = (await ctl.execute('query-sev-capabilities')).return.pdh as string;
  const { port, g } = await incomingSevGuest(ctl, sevd, 'vm', '64M');
  const sock = await connectPeer(port);
  // A real RECEIVE_START first (the PDH is public), so the list reaches the loader; the
  // clock starts once it is done (its key set-up is not the peer's doing).
  for (const b of [streamHeader(), ramSizeRecord(64 << 20, true), forgedReceiveStart(pdh, 1)]) await send(sock, b);
  for (const end = Date.now() + 10000; (await g.execute('query-sev')).return.state !== 'receive-update' && Date.now() < end; ) await sleep(20);
  const stopTiming = timeControl(ctl);
  await sleep(50);
  for (const b of [sharedHead(), sharedRange(0, 2 ** 32 - 1), sharedEnd()]) await send(sock, b);
  const info = await waitStatus(g, ['failed', 'completed']);
  await sleep(200);
  const lat = await stopTiming();
  sock.destroy();
  t.equal(info.status, 'failed');
  t.equal(info['error-desc'], 'shared-regions range [0x0, 0xffffffff) is beyond guest frame 0x4000');
  t.ok(Math.max(...lat) < 200, `control monitor max latency ${Math.max(...lat).toFixed(1)} ms over ${lat.length} query-version`);
  t.same((await g.execute('query-status')).return, { status: 'inmigrate', running: false });
  t.equal((await g.execute('query-sev')).return.state, 'uninit', 'the guest state is discarded');
  t.same((await ctl.execute('query-asids')).return['in-use'], [], 'no ASID');
  t.same((await ctl.execute('sev-platform-status')).return['guest-count'], 0, 'no firmware context');
  await Promise.all([g.close(), ctl.close()]);
});

t.test('an unterminated 3 MB range list in small chunks: linear, the monitor stays quick, SIGTERM stops the daemon', async (t) => {
  const sevd = await startSevd({ guests: [] });
  t.teardown(() => sevd.stop().then(() => undefined));
  const ctl = await control(sevd);
  const pdh = (await ctl.execute('query-sev-capabilities')).return.pdh as string;
  // 1 GiB: 262144 pages, so 262144 one-page ranges (3 MiB of list) are all within limits.
  const { port, g } = await incomingSevGuest(ctl, sevd, 'vm', '1G');
  const pages = 262144;
  const list = Buffer.alloc(pages * 12);
  for (let i = 0; i < pages; i++) sharedRange(i, i + 1).copy(list, i * 12);
  const sock = await connectPeer(port);
  sock.setNoDelay(true);
  for (const b of [streamHeader(), ramSizeRecord(1 << 30, true), forgedReceiveStart(pdh, 1), sharedHead()]) await send(sock, b);
  for (const end = Date.now() + 10000; (await g.execute('query-sev')).return.state !== 'receive-update' && Date.now() < end; ) await sleep(20);
  const stopTiming = timeControl(ctl);
  const t0 = performance.now();
  // 1000-byte chunks (not a multiple of a range), a pause now and then so they arrive apart.
  for (let at = 0, n = 0; at < list.length; at += 1000, n++) {
    await send(sock, list.subarray(at, at + 1000));
    if (n % 32 === 0) await new Promise((r) => setImmediate(r));
  }
  const sent = performance.now() - t0;
  // Everything received is loaded: the counter reaches the list's size.
  let info;
  for (const end = Date.now() + 10000; ; await sleep(50)) {
    info = (await g.execute('query-migrate')).return;
    if (info.ram?.transferred >= list.length || info.status !== 'active' || Date.now() > end) break;
  }
  const loaded = performance.now() - t0;
  const lat = await stopTiming();
  t.equal(info.status, 'active', 'still waiting for the end of the list');
  t.ok(info.ram.transferred >= list.length, `all ${list.length} bytes loaded (${info.ram.transferred}) in ${loaded.toFixed(0)} ms (sent in ${sent.toFixed(0)} ms)`);
  t.ok(loaded < 10000, 'linear: done within seconds');
  t.ok(Math.max(...lat) < 500, `control monitor max latency ${Math.max(...lat).toFixed(1)} ms over ${lat.length} query-version`);
  await Promise.all([g.close(), ctl.close()]);
  const s0 = performance.now();
  const code = await sevd.stop('SIGTERM');
  const took = performance.now() - s0;
  sock.destroy();
  t.equal(code, 0, 'SIGTERM: exit 0');
  t.ok(took < 5000, `SIGTERM: stopped in ${took.toFixed(0)} ms`);
});

t.test('random well-framed records for 2 s (fresh guests as each refuses): the monitor stays quick', async (t) => {
  const sevd = await startSevd({ guests: [] });
  t.teardown(() => sevd.stop().then(() => undefined));
  const ctl = await control(sevd);
  const pdh = (await ctl.execute('query-sev-capabilities')).return.pdh as string;
  let n = 0;
  const next = async () => (await incomingSevGuest(ctl, sevd, `h${n++}`, '64M')).port;
  const stopTiming = timeControl(ctl);
  const r = await streamHostileRecords({ port: await next(), durationMs: 2000, ramBytes: 64 << 20, targetPdhB64: pdh, seed: 21, nextPort: next });
  const lat = await stopTiming();
  t.ok(r.records > 0 && r.refused > 0, `${r.records} records, ${r.bytes} bytes, ${r.refused} streams refused (seed ${r.seed})`);
  t.ok(Math.max(...lat) < 500, `control monitor max latency ${Math.max(...lat).toFixed(1)} ms over ${lat.length} query-version`);
  t.same((await ctl.execute('query-asids')).return['in-use'].filter((a: { name: string }) => a.name !== `h${n - 1}`), [], 'every refused guest gave its ASID back');
  await ctl.close();
});
