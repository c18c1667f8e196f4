/**
 * Hole 2 (crash by HMP): `human-monitor-command` `xp /100000000xg 0` on a 64 MiB guest ran
 * the heap to 4.3 GB and the daemon died. Now one `xp` dumps at most 64 KiB of guest memory;
 * past that it answers HMP's error text at once, reads nothing and allocates nothing.
 */
import t from 'tap';
import { QmpClient } from '../../clients/qmp/client.js';
import { startSevd } from '../helpers/sevd-process.js';
import { memoryOf } from '../helpers/raw-http.js';

t.test('xp past the bound: an error line in time, no memory spent', async (t) => {
  const sevd = await startSevd({ guests: [{ name: 'g', memory: '64M', paused: true, 'sev-guest': { policy: 1 } }] });
  t.teardown(() => sevd.stop());
  const c = await QmpClient.connect(sevd.guestQmp('g'));
  t.teardown(() => c.close());
  const before = memoryOf(sevd.proc.pid!);
  for (const line of ['xp /100000000xg 0', 'xp /8193xg 0', 'xp /65537c 0', 'xp /99999999999999999999xb 0']) {
    const t0 = performance.now();
    const out = await c.execute('human-monitor-command', { 'command-line': line }) as string;
    const ms = performance.now() - t0;
    t.match(out, /^xp: at most 65536 bytes can be dumped at once/, `${line}: refused with HMP's error text`);
    t.ok(ms < 2000, `${line}: answered in ${ms.toFixed(1)} ms`);
  }
  const after = memoryOf(sevd.proc.pid!);
  t.ok(after.peakMiB - before.peakMiB < 64, `peak RSS grew ${(after.peakMiB - before.peakMiB).toFixed(1)} MiB (< 64)`);

  // At the bound it works, line for line as before.
  const full = await c.execute('human-monitor-command', { 'command-line': 'xp /8192xg 0' }) as string;
  t.equal(full.split('\r\n').filter(Boolean).length, 4096, 'xp /8192xg: 64 KiB in 4096 lines of two units');
  t.match(full.split('\r\n')[0], /^0000000000000000: 0x[0-9a-f]{16} 0x[0-9a-f]{16}$/);
  t.match(await c.execute('human-monitor-command', { 'command-line': 'xp /65536c 0' }), /^0000000000000000: '/, 'xp /65536c: at the bound');
  // The refused one did not change the remembered format/size (as QEMU only keeps a parsed command's).
  t.match(await c.execute('human-monitor-command', { 'command-line': 'xp 0' }), /^0000000000000000: '/, 'the last accepted format (c) is the default');
  t.same(await c.execute('query-status'), { status: 'prelaunch', running: false }, 'the guest is as it was');
});
