/**
 * Hole 10 (metric series per unknown command): 11,951 distinct unknown command names (one
 * with a raw NUL) made 11,951 series and 3.3 MB of `/metrics`. Now only known commands
 * have a label of their own (others count as `unknown`), and `/metrics` needs a token when
 * tokens are configured (any monitor token, or `websocket.metricsToken`).
 */
import t from 'tap';
import { RawClient } from '../helpers/raw-client.js';
import { startSevd } from '../helpers/sevd-process.js';

t.test('unknown command names share one series', async (t) => {
  const sevd = await startSevd({ guests: [] });
  t.teardown(() => sevd.stop());
  const c = await RawClient.connect(sevd.controlPath);
  t.teardown(() => c.close());
  await c.negotiate();
  const names = Array.from({ length: 2000 }, (_, i) => `x-${i}-${Math.random().toString(36).slice(2)}`);
  names.push('nul\u0000name', 'quote"name', 'newline\nname');
  for (let i = 0; i < names.length; i += 200) {
    const replies = await Promise.all(names.slice(i, i + 200).map((n, k) => c.execute(n, undefined, `u${i + k}`)));
    for (const r of replies) if (r.error?.class !== 'CommandNotFound') t.fail(`unexpected reply ${JSON.stringify(r)}`);
    await c.execute('query-version'); // errors in a row past the limit would end the connection
  }
  await c.execute('query-version');
  const text = await (await fetch(`http://127.0.0.1:${sevd.wsPort}/metrics`)).text();
  const series = text.split('\n').filter((l) => l.startsWith('sevd_qmp_commands_total{'));
  t.match(text, new RegExp(`sevd_qmp_commands_total\\{monitor="control",command="unknown",result="error"\\} ${names.length}`), 'every unknown name counts under "unknown"');
  t.ok(series.length <= 4, `${series.length} command series (qmp_capabilities, query-version, unknown)`);
  t.notMatch(text, /x-\d+-|nul|quote|newline/, 'no client-chosen name appears');
  t.ok(text.length < 64 * 1024, `/metrics is ${text.length} bytes`);
});

t.test('/metrics needs a token when tokens are configured', async (t) => {
  const sevd = await startSevd({ guests: [], websocket: { port: 0, token: 'full-tok', tokens: [{ token: 'ro-tok', access: 'read-only' }], metricsToken: 'scrape-tok' } });
  t.teardown(() => sevd.stop());
  const get = (auth?: string) => fetch(`http://127.0.0.1:${sevd.wsPort}/metrics`, auth ? { headers: { Authorization: `Bearer ${auth}` } } : {});
  t.equal((await get()).status, 401, 'no token: 401');
  t.equal((await get('wrong')).status, 401, 'a wrong token: 401');
  for (const tok of ['full-tok', 'ro-tok', 'scrape-tok']) {
    const r = await get(tok);
    t.equal(r.status, 200, `${tok}: 200`);
    t.match(await r.text(), /# TYPE sevd_qmp_commands_total counter/);
  }
  t.equal((await fetch(`http://127.0.0.1:${sevd.wsPort}/healthz`)).status, 200, '/healthz stays open');
});
