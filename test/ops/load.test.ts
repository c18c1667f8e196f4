/** Bounded load and soak: 1,000 concurrent connections across 100 guests; 10,000 launch/destroy cycles. */
import t from 'tap';
import { connectionLoad, launchSoak } from '../bench/ops-bench.js';

t.test('1,000 concurrent connections across 100 guests', async (t) => {
  const r = await connectionLoad(100, 1000, 10);
  t.equal(r.connections, 1000, 'all connections held');
  t.equal(r.requests, 10000, 'every request answered');
  t.comment(`load: ${r.connections} connections, ${r.requests} requests, ${Math.round(r.rps)}/s, p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms`);
});

t.test('10,000 launch/destroy cycles: nothing left, RSS flat', async (t) => {
  const r = launchSoak(10000);
  t.equal(r.contextsLeft, 0, 'no firmware context left');
  t.ok(r.rssEndMiB - r.rssWarmMiB < 40, `RSS ${r.rssWarmMiB.toFixed(0)} MiB after warm-up, ${r.rssEndMiB.toFixed(0)} MiB after ${r.cycles} cycles`);
  t.comment(`soak: ${r.cycles} cycles in ${r.seconds.toFixed(1)} s, RSS ${r.rssWarmMiB.toFixed(1)} → ${r.rssEndMiB.toFixed(1)} MiB`);
});
