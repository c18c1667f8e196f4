/**
 * A process of its own that times `query-version` on a control socket: the hostile-load
 * benchmark's load generators share the bench process's event loop, which would otherwise
 * add their own delays to every round trip it measures.
 * Usage: node control-probe.js SOCKET MS → one JSON line {p50, p99, n} (milliseconds).
 */
import { RawClient } from '../helpers/raw-client.js';
import { percentile } from './qmp-load.js';

const [path, ms] = process.argv.slice(2);
const c = await RawClient.connect(path!);
await c.negotiate();
const lat: number[] = [];
const end = performance.now() + Number(ms);
while (performance.now() < end) {
  const t0 = performance.now();
  await c.execute('query-version');
  lat.push(performance.now() - t0);
  await new Promise((r) => setTimeout(r, 5));
}
await c.close();
lat.sort((a, b) => a - b);
console.log(JSON.stringify({ p50: percentile(lat, 50), p99: percentile(lat, 99), n: lat.length }));
