/**
 * Hole 1 (crash by URL): a WebSocket upgrade to `/qmp/%E0%A4%A` made `decodeURIComponent`
 * throw in the upgrade handler and the process exited, taking every guest with it. A
 * read-only token was enough; with no token configured, anyone who could connect.
 * Now: 400 for that request, and the daemon, its guests and other clients carry on.
 */
import t from 'tap';
import { QmpClient } from '../../clients/qmp/client.js';
import { startSevd } from '../helpers/sevd-process.js';
import { getRequest, rawHttp, upgradeRequest } from '../helpers/raw-http.js';

const RO = 'read-only-token-for-url-test';
const BAD_PATHS = ['/qmp/%E0%A4%A', '/qga/%', '/qmp/%ZZ', '/%E0%A4%A', '/qmp/%C0%80', '//[', 'http://[::1/qmp'];

for (const tokens of [[{ token: RO, access: 'read-only' }], []]) {
  const who = tokens.length ? 'a read-only token' : 'no token configured';
  t.test(`malformed upgrade paths with ${who}: 400, nothing else affected`, async (t) => {
    const sevd = await startSevd({ websocket: { port: 0, tokens }, guests: [{ name: 'g', memory: '16M', paused: true, 'sev-guest': { policy: 1 } }] });
    t.teardown(() => sevd.stop());
    const port = sevd.wsPort!;
    const auth: Record<string, string> = tokens.length ? { Authorization: `Bearer ${RO}` } : {};
    const held = await QmpClient.connect(sevd.guestQmp('g'));
    t.teardown(() => held.close());
    for (const path of BAD_PATHS) {
      const upgrade = await rawHttp(port, upgradeRequest(path, port, auth));
      t.ok(upgrade.status === 400 || upgrade.status === 404, `upgrade to ${path}: ${upgrade.status}, a client error`);
      const get = await rawHttp(port, getRequest(path, port, auth));
      t.ok(get.status >= 400 && get.status < 500, `GET ${path}: ${get.status}, a client error`);
    }
    t.equal((await rawHttp(port, upgradeRequest('/qmp/%E0%A4%A', port, auth))).status, 400, 'the reported path exactly: 400 Bad Request');
    t.equal(sevd.proc.exitCode, null, 'the daemon is still running');
    t.same(await held.execute('query-status'), { status: 'prelaunch', running: false }, 'a client connected before is still served');
    const ws = await QmpClient.connect(`ws://127.0.0.1:${port}/qmp/g`, tokens.length ? { headers: auth } : {});
    t.equal((await ws.execute('query-name') as { name: string }).name, 'g', 'a well-formed upgrade still works');
    await ws.close();
  });
}
