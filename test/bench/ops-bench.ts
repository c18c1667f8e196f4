/** Robustness figures shared by the ops tests and `npm run bench`: a connection load and a launch/destroy soak. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { unixConn, percentile } from './qmp-load.js';
import { startSevd } from '../helpers/sevd-process.js';
import { Platform } from '../../server/firmware/platform.js';
import { GuestFirmware } from '../../server/firmware/guest-firmware.js';
import { MemoryController } from '../../server/memory/memory-controller.js';
import { GuestMemory } from '../../server/memory/guest-memory.js';
import { AsidPool } from '../../server/kvm/asid-pool.js';
import v8 from 'node:v8';
import vm from 'node:vm';

/** A forced full GC, so RSS compares live memory rather than garbage not yet collected. */
function fullGc(): void {
  v8.setFlagsFromString('--expose-gc');
  (vm.runInNewContext('gc') as () => void)();
}

/** `connections` clients spread over `guests` guest monitors, each doing `requests` query-status. */
export async function connectionLoad(guests: number, connections: number, requests: number) {
  const sevd = await startSevd({ guests: Array.from({ length: guests }, (_, i) => ({ name: `g${i}`, memory: '1G', paused: true })) });
  try {
    const conns = await Promise.all(Array.from({ length: connections }, (_, i) => unixConn(sevd.guestQmp(`g${i % guests}`))));
    const lat: number[] = [];
    const t0 = performance.now();
    await Promise.all(conns.map(async (c) => {
      for (let i = 0; i < requests; i++) {
        const s = performance.now();
        await c.roundTrip('{"execute":"query-status"}', 1);
        lat.push(performance.now() - s);
      }
    }));
    const secs = (performance.now() - t0) / 1000;
    conns.forEach((c) => c.close());
    lat.sort((a, b) => a - b);
    return { connections: conns.length, requests: lat.length, rps: lat.length / secs, p50: percentile(lat, 50), p99: percentile(lat, 99) };
  } finally {
    await sevd.stop();
  }
}

/**
 * Launch/destroy cycles through the firmware and memory core (LAUNCH_START, ACTIVATE,
 * LAUNCH_UPDATE_DATA, LAUNCH_MEASURE, LAUNCH_FINISH, a private write, DEACTIVATE,
 * DECOMMISSION, ASID recycling): RSS after the warm-up and at the end.
 */
export function launchSoak(cycles: number) {
  const platform = new Platform({ generation: 'milan', apiMajor: 1, apiMinor: 55, build: 21, seed: null, stateDir: mkdtempSync(join(tmpdir(), 'sevd-soak-')) });
  platform.init();
  const mc = new MemoryController();
  const fw = new GuestFirmware(platform, mc, { maxAsid: 16, minSevAsid: 1 });
  const asids = new AsidPool(fw);
  const page = Buffer.alloc(4096, 0x5a);
  let rssWarm = 0;
  const t0 = performance.now();
  for (let i = 0; i < cycles; i++) {
    // Warm-up: half the run, so that allocator arenas and V8 heap sizing have settled.
    if (i === Math.floor(cycles / 2)) {
      fullGc();
      rssWarm = process.memoryUsage().rss;
    }
    const mem = new GuestMemory([{ name: 'pc.ram', base: 0, size: 64 << 20 }], mc);
    mem.write(0x10000, page);
    const h = fw.launchStart({ handle: 0, policy: 1, godh: null, session: null });
    const asid = asids.allocate()!;
    fw.activate(h, asid);
    mem.asid = asid;
    mem.setDefaultPrivate();
    fw.launchUpdateData(h, mem, 0x10000, 4096);
    fw.launchMeasure(h, { len: 48 });
    fw.launchFinish(h);
    mem.guestWrite(0x20000, page);
    fw.deactivate(h);
    fw.decommission(h);
    asids.release(asid);
  }
  fullGc();
  const rssEnd = process.memoryUsage().rss;
  return { cycles, seconds: (performance.now() - t0) / 1000, rssWarmMiB: rssWarm / 2 ** 20, rssEndMiB: rssEnd / 2 ** 20, contextsLeft: fw.contexts.size };
}
