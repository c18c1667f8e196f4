/**
 * Hole 8 (DNS rebinding): the "own origin" check built the origin from the client's `Host`
 * header, so a page at attacker.example whose name was rebound to 127.0.0.1 sent
 * `Host: attacker.example:PORT` with a matching `Origin` and drove the control monitor
 * (the default config has no token). Now only the listen address, `localhost` and
 * `websocket.allowedHosts` are answered on `/`, `/qmp*`, `/qga*` and `/metrics`.
 */
import t from 'tap';
import { QmpClient } from '../../clients/qmp/client.js';
import { startSevd } from '../helpers/sevd-process.js';
import { getRequest, rawHttp, upgradeRequest } from '../helpers/raw-http.js';

t.test('a rebound name is refused; our own names are served', async (t) => {
  const sevd = await startSevd({ websocket: { port: 0, allowedHosts: ['sevd.lab.example'] }, guests: [{ name: 'g', memory: '16M', paused: true }] });
  t.teardown(() => sevd.stop());
  const port = sevd.wsPort!;
  const evil = { Host: `attacker.example:${port}`, Origin: `http://attacker.example:${port}` };
  for (const path of ['/qmp', '/qmp/g', '/qga/g']) {
    t.equal((await rawHttp(port, upgradeRequest(path, port, evil))).status, 403, `upgrade to ${path} with a rebound Host: 403`);
  }
  for (const path of ['/', '/app.js', '/metrics']) {
    t.equal((await rawHttp(port, getRequest(path, port, evil))).status, 403, `GET ${path} with a rebound Host: 403`);
  }
  t.equal((await rawHttp(port, upgradeRequest('/qmp', port, { Host: `ATTACKER.example:${port}` }))).status, 403, 'any case, no Origin: 403');
  t.equal((await rawHttp(port, upgradeRequest('/qmp', port, { Host: '127.0.0.1.attacker.example' }))).status, 403, 'a name that starts like ours: 403');
  const noHost = `GET /qmp HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`;
  t.ok((await rawHttp(port, noHost)).status >= 400, 'no Host at all: refused');

  // What a rebinding page would have done next: nothing happened.
  const ctl = await QmpClient.connect(sevd.controlPath);
  t.teardown(() => ctl.close());
  t.same((await ctl.execute('query-guests') as { name: string }[]).map((g) => g.name), ['g'], 'no guest was touched');

  // Our own names work, with their own origins.
  for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `sevd.lab.example:${port}`, `SEVD.LAB.EXAMPLE`]) {
    const r = await rawHttp(port, upgradeRequest('/qmp', port, { Host: host, Origin: `http://${host}` }));
    t.equal(r.status, 101, `Host ${host} with its own Origin: upgraded`);
  }
  t.equal((await rawHttp(port, getRequest('/', port, { Host: `localhost:${port}` }))).status, 200, 'GET / by localhost: 200');
  // Public paths answer by any name (KDS clients, health checks behind proxies).
  t.equal((await rawHttp(port, getRequest('/healthz', port, { Host: 'anything.example' }))).status, 200, '/healthz by any name');
  const ws = await QmpClient.connect(`ws://localhost:${port}/qmp`);
  t.ok(Array.isArray(await ws.execute('query-guests')), 'a client by localhost drives the monitor');
  await ws.close();
});

t.test('a wildcard listener answers IP literals, never other names', async (t) => {
  const sevd = await startSevd({ websocket: { port: 0, host: '0.0.0.0' }, guests: [] });
  t.teardown(() => sevd.stop());
  const port = sevd.wsPort!;
  t.equal((await rawHttp(port, upgradeRequest('/qmp', port, { Host: `127.0.0.1:${port}` }))).status, 101, 'Host 127.0.0.1: upgraded');
  t.equal((await rawHttp(port, upgradeRequest('/qmp', port, { Host: `[::1]:${port}` }))).status, 101, 'Host [::1]: upgraded');
  t.equal((await rawHttp(port, upgradeRequest('/qmp', port, { Host: `rebound.example:${port}` }))).status, 403, 'a DNS name: 403');
});
