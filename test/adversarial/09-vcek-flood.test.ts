/**
 * Hole 9 (unbounded /vcek cache): 10,000 distinct TCB queries without a token, ~20 ms of CPU
 * each, took RSS from 100 to 183 MB, and 2^32 keys were possible. Now issued VCEKs sit in a
 * bounded LRU cache and new ones are issued at most 10/s (burst 20): past that, 429 with
 * Retry-After, at the cost of a refused HTTP request.
 */
import t from 'tap';
import { startSevd } from '../helpers/sevd-process.js';
import { memoryOf } from '../helpers/raw-http.js';
import { QmpClient } from '../../clients/qmp/client.js';

t.test('a flood of new TCBs: bounded memory and CPU, issued VCEKs still served', async (t) => {
  const sevd = await startSevd({ guests: [], platform: { generation: 'milan', seed: '5eed' } });
  t.teardown(() => sevd.stop());
  const ctl = await QmpClient.connect(sevd.controlPath);
  t.teardown(() => ctl.close());
  const chip = (await ctl.execute('sev-snp-platform-status') as { 'chip-id': string })['chip-id'];
  const url = (i: number) => `http://127.0.0.1:${sevd.wsPort}/vcek/v1/Milan/${chip}?blSPL=${i & 0xff}&teeSPL=${(i >> 8) & 0xff}&snpSPL=${(i >> 16) & 0xff}&ucodeSPL=7`;

  const first = await fetch(url(0));
  t.equal(first.status, 200, 'a VCEK is issued');
  const firstDer = Buffer.from(await first.arrayBuffer());
  const before = memoryOf(sevd.proc.pid!);
  const counts: Record<number, number> = {};
  const t0 = performance.now();
  const N = 3000;
  for (let i = 1; i <= N; i += 50) {
    const batch = await Promise.all(Array.from({ length: 50 }, (_, k) => fetch(url(i + k)).then(async (r) => (await r.arrayBuffer(), r))));
    for (const r of batch) counts[r.status] = (counts[r.status] ?? 0) + 1;
    if (i === 1) t.match(batch.find((r) => r.status === 429)?.headers.get('retry-after') ?? '', /^\d+$/, '429 carries Retry-After');
  }
  const seconds = (performance.now() - t0) / 1000;
  const issued = counts[200] ?? 0;
  t.equal(issued + (counts[429] ?? 0), N, `${N} requests for new TCBs: only 200s and 429s (${JSON.stringify(counts)})`);
  t.ok(issued <= 20 + Math.ceil(seconds * 10) + 1, `issued ${issued} new VCEKs in ${seconds.toFixed(2)} s: within the burst and rate`);
  const after = memoryOf(sevd.proc.pid!);
  t.ok(after.rssMiB - before.rssMiB < 40, `RSS ${before.rssMiB.toFixed(0)} → ${after.rssMiB.toFixed(0)} MiB`);
  const again = await fetch(url(0));
  t.equal(again.status, 200, 'a VCEK issued before the flood is still served (from the cache, or reissued in time)');
  t.same(Buffer.from(await again.arrayBuffer()).subarray(0, 16), firstDer.subarray(0, 16), 'the same certificate');
  const t1 = performance.now();
  t.same(await ctl.execute('query-version').then(() => 'ok'), 'ok', 'the control monitor answers');
  t.ok(performance.now() - t1 < 1000, 'promptly');
  await new Promise((r) => setTimeout(r, 1200));
  t.equal((await fetch(url(N + 100))).status, 200, 'after a pause, a new TCB is issued again');
});
