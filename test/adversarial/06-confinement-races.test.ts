/**
 * Hole 6 (issue 21), confinement races and hard links: a name was checked, then opened
 * again by name, so flipping `dumps/sub` between a directory and a symlink to a directory
 * outside during `pmemsave` wrote dumps outside; the same on `images/sub` loaded an outside
 * file as firmware (and the firmware cache kept it); and a hard link in `dumps/` to an
 * outside file was truncated, overwritten and chmod'ed. Replayed over a WebSocket with a
 * full token: nothing lands outside, nothing outside is loaded, refusals are `not allowed`.
 */
import t from 'tap';
import { chmodSync, linkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QmpClient } from '../../clients/qmp/client.js';
import { startSevd, type SevdProcess } from '../helpers/sevd-process.js';
import { hammer, NO_SWAPPER, swapper } from '../helpers/dir-swapper.js';
import { outcome } from '../helpers/qmp-outcome.js';

const FULL = 'full-token-0123456789';
const RACE_MS = 2500;
/** Firmware images in the race: more than the cache keeps (8). */
const IMAGES = 12;

async function ws(sevd: SevdProcess, path: string) {
  return QmpClient.connect(`ws://127.0.0.1:${sevd.wsPort}${path}`, { headers: { Authorization: `Bearer ${FULL}` }, timeoutMs: 10000 });
}

function scratch(t: { teardown(fn: () => unknown): void }) {
  const dir = mkdtempSync(join(tmpdir(), 'sevd-adv06-'));
  const images = join(dir, 'images');
  const outside = join(dir, 'outside');
  for (const d of [images, outside]) mkdirSync(d);
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return { dir, images, outside };
}

/** A daemon whose WebSocket clients (a full token) are confined to `images` and the default dumps. */
async function confinedSevd(t: { teardown(fn: () => unknown): void }, images: string, guests: unknown[]): Promise<SevdProcess> {
  const sevd = await startSevd({ websocket: { port: 0, tokens: [{ token: FULL, access: 'full' }] }, paths: { images: [images] }, guests });
  t.teardown(() => sevd.stop());
  return sevd;
}

t.test('pmemsave while dumps/sub flips between a directory and a symlink: nothing lands outside', { skip: NO_SWAPPER }, async (t) => {
  const L = scratch(t);
  const sevd = await confinedSevd(t, L.images, [{ name: 'g', memory: '16M', paused: true }]);
  const sub = join(sevd.stateDir, 'dumps', 'sub');
  mkdirSync(sub);
  const g = await ws(sevd, '/qmp/g');
  t.teardown(() => g.close());
  const flips = swapper(sub, L.outside, RACE_MS);
  const results = await hammer(flips, 4, (i) => outcome(g.execute('pmemsave', { val: 0, size: 4096, filename: `sub/d${i}.bin` })));
  t.ok((await flips) > 0, 'the swapper flipped');
  t.equal(readdirSync(L.outside).length, 0, `no dump outside (${results.length} commands)`);
  const errors = results.map((r, i) => [r, `Path 'sub/d${i}.bin' is not allowed for dumps`]).filter(([r, want]) => r !== undefined && r !== want);
  t.same(errors.slice(0, 3), [], 'every refusal is the confinement error');
  const written = results.filter((r) => r === undefined).length;
  t.equal(readdirSync(sub).length, written, `every accepted dump is inside (${written} written, ${results.length - written} refused)`);
});

t.test('guest-add firmware while images/sub flips: no guest runs the outside image, the cache is not poisoned', { skip: NO_SWAPPER }, async (t) => {
  const L = scratch(t);
  const sub = join(L.images, 'sub');
  mkdirSync(sub);
  // More images than the firmware cache keeps, so that the race reads files again and again;
  // inside and outside of the same size and mtime: a cache keyed by name, size and mtime
  // cannot tell them apart.
  const when = new Date('2024-01-01T00:00:00Z');
  for (let k = 0; k < IMAGES; k++) {
    writeFileSync(join(sub, `fw${k}.fd`), Buffer.alloc(64 * 1024, 0xaa));
    writeFileSync(join(L.outside, `fw${k}.fd`), Buffer.alloc(64 * 1024, 0xbb));
    for (const d of [sub, L.outside]) utimesSync(join(d, `fw${k}.fd`), when, when);
  }
  const sevd = await confinedSevd(t, L.images, []);
  const ctl = await ws(sevd, '/qmp');
  t.teardown(() => ctl.close());
  /** The first byte of a guest's flash (mapped to end at 4 GiB), as its monitor shows it. */
  const flashByte = async (name: string) => {
    const m = await ws(sevd, `/qmp/${name}`);
    try {
      return /0x([0-9a-f]{2})/.exec(await m.execute('human-monitor-command', { 'command-line': `xp /1xb ${2 ** 32 - 64 * 1024}` }) as string)?.[1];
    } finally {
      await m.close();
    }
  };
  const loaded: string[] = [];
  const flips = swapper(sub, L.outside, RACE_MS);
  const results = await hammer(flips, 4, async (i) => {
    const r = await outcome(ctl.execute('guest-add', { name: `f${i}`, memory: '16M', paused: true, firmware: `sub/fw${i % IMAGES}.fd` }));
    if (r === undefined) {
      loaded.push((await flashByte(`f${i}`)) ?? '?');
      await ctl.execute('guest-del', { name: `f${i}` });
    }
    return r;
  });
  t.ok((await flips) > 0, 'the swapper flipped');
  t.equal(loaded.filter((b) => b !== 'aa').length, 0, `every guest added runs the image inside (${loaded.length} added, ${results.length - loaded.length} refused)`);
  const errors = results.filter((r) => r !== undefined && !/^Path '.*' is not allowed for images$/.test(r));
  t.same(errors.slice(0, 3), [], 'every refusal is the confinement error');
  const after: string[] = [];
  for (let k = 0; k < IMAGES; k++) {
    await ctl.execute('guest-add', { name: `after${k}`, memory: '16M', paused: true, firmware: `sub/fw${k}.fd` });
    after.push((await flashByte(`after${k}`)) ?? '?');
    await ctl.execute('guest-del', { name: `after${k}` });
  }
  t.same(after.filter((b) => b !== 'aa'), [], 'after the race, the firmware cache holds no outside image');
});

t.test('a hard link in dumps/ to an outside file is refused and the file left as it was', async (t) => {
  const L = scratch(t);
  const sevd = await confinedSevd(t, L.images, [{ name: 'g', memory: '16M', paused: true }]);
  const victim = join(L.outside, 'victim');
  writeFileSync(victim, 'victim\n');
  chmodSync(victim, 0o644);
  linkSync(victim, join(sevd.stateDir, 'dumps', 'hl'));
  const g = await ws(sevd, '/qmp/g');
  t.teardown(() => g.close());
  for (const cmd of ['memsave', 'pmemsave']) {
    t.equal(await outcome(g.execute(cmd, { val: 0, size: 4096, filename: 'hl' })), "Path 'hl' is not allowed for dumps", `${cmd} to the hard link is refused`);
  }
  t.equal(readFileSync(victim, 'utf8'), 'victim\n', 'the outside file keeps its content');
  t.equal(statSync(victim).mode & 0o777, 0o644, 'and its mode');
  t.same(await g.execute('pmemsave', { val: 0, size: 4096, filename: 'own.bin' }), {}, 'a dump of its own is still written');
  t.same(await g.execute('pmemsave', { val: 0, size: 4096, filename: 'own.bin' }), {}, 'and overwritten');
  t.equal(statSync(join(sevd.stateDir, 'dumps', 'own.bin')).size, 4096);
});
