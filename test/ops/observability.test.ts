/** /metrics, connection limits, the negotiation timeout, and logs that never carry secrets. */
import t from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { RawClient } from '../helpers/raw-client.js';
import { startSevd } from '../helpers/sevd-process.js';
import { buildLaunchSession, buildSecretPacket } from '../helpers/guest-owner.js';

t.test('metrics and limits', async (t) => {
  const sevd = await startSevd({ guests: [{ name: 'g', paused: true, 'sev-guest': { policy: 1 } }], limits: { maxConnectionsPerMonitor: 2, maxConnections: 5, negotiationTimeoutMs: 300 } });
  t.teardown(() => sevd.stop());
  const a = await RawClient.connect(sevd.guestQmp('g'));
  await a.negotiate();
  await a.execute('query-status');
  await a.execute('nosuch');
  const b = await RawClient.connect(sevd.guestQmp('g'));
  await b.negotiate();
  const c = await RawClient.connect(sevd.guestQmp('g'));
  const refused = JSON.parse(await c.next());
  t.same(refused, { error: { class: 'GenericError', desc: 'sevd: too many connections to this monitor (limit 2)' } }, 'over the per-monitor limit: told why');
  await new Promise((r) => c.socket.once('close', r));
  t.same((await a.execute('query-name')).return, { name: 'g' }, 'the others carry on');

  const idle = await RawClient.connect(sevd.controlPath);
  await idle.next(); // greeting, then silence
  t.equal(JSON.parse(await idle.next(2000)).error.desc, 'sevd: capabilities negotiation timed out, closing the connection');
  await new Promise((r) => idle.socket.once('close', r));

  const res = await fetch(`http://127.0.0.1:${sevd.wsPort}/metrics`);
  t.equal(res.status, 200);
  const text = await res.text();
  t.match(text, /sevd_qmp_commands_total\{monitor="guest",command="query-status",result="ok"\} 1/);
  t.match(text, /sevd_qmp_commands_total\{monitor="guest",command="unknown",result="error"\} 1/, "an unknown command counts under unknown, never its own name");
  t.match(text, /sevd_qmp_command_duration_seconds_bucket\{monitor="guest",le="\+Inf"\} \d+/);
  t.match(text, /sevd_guests\{run_state="prelaunch",sev_state="launch-secret"\} 1/);
  t.match(text, /sevd_firmware_commands_total\{command="LAUNCH_START",status="SUCCESS"\} 1/);
  t.match(text, /sevd_firmware_commands_total\{command="LAUNCH_MEASURE",status="4"\} 1/, 'the length query counts as INVALID_LEN');
  t.match(text, /sevd_connections\{transport="unix"\} 2/);
  t.match(text, /sevd_rejected_connections_total\{reason="monitor"\} 1/);
  t.same(await (await fetch(`http://127.0.0.1:${sevd.wsPort}/healthz`)).json(), { status: 'ok' });
  await Promise.all([a.close(), b.close()]);
  // Over the total limit on the WebSocket listener: 503 before the upgrade.
  const held = await Promise.all([1, 2, 3, 4, 5].map(async () => {
    const r = await RawClient.connect(sevd.controlPath);
    await r.next();
    return r;
  }));
  const status = await new Promise<number>((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${sevd.wsPort}/qmp`);
    ws.on('unexpected-response', (_q, r) => resolve(r.statusCode ?? 0));
    ws.on('open', () => resolve(101));
    ws.on('error', () => undefined);
  });
  t.equal(status, 503, 'total limit: 503 before the upgrade');
  await Promise.all(held.map((h) => h.close()));
});

t.test('a full run at debug level logs no key, TEK/TIK, secret or token', async (t) => {
  const token = 'tok-' + 'Zq9'.repeat(8);
  const sevd = await startSevd({ logLevel: 'debug', guests: [], websocket: { port: 0, token } });
  t.teardown(() => sevd.stop());
  const dir = mkdtempSync(join(tmpdir(), 'sevd-logs-'));
  const ctl = await RawClient.connect(sevd.controlPath);
  await ctl.negotiate();
  const pdh = Buffer.from((await ctl.execute('query-sev-capabilities')).return.pdh, 'base64');
  const owner = buildLaunchSession(pdh, 1);
  writeFileSync(join(dir, 'g'), owner.godhB64);
  writeFileSync(join(dir, 's'), owner.sessionB64);
  await ctl.execute('guest-add', { name: 'v', paused: true, 'sev-guest': { policy: 1, 'dh-cert-file': join(dir, 'g'), 'session-file': join(dir, 's') } });
  const g = await RawClient.connect(sevd.guestQmp('v'));
  await g.negotiate();
  const secret = Buffer.from('PASSPHRASE-should-never-be-logged');
  const pkt = buildSecretPacket(owner, (await g.execute('query-sev-launch-measure')).return.data, [{ guid: '736869e5-84f0-4973-92ec-06879ce3da0b', data: secret }]);
  await g.execute('sev-inject-launch-secret', { 'packet-header': pkt.header, secret: pkt.secret });
  await g.execute('cont');
  const agent = await RawClient.connect(sevd.guestQga('v'));
  await agent.execute('guest-get-secrets');
  await g.execute('sev-inject-launch-secret', { 'packet-header': 'AAAA', secret: pkt.secret });
  const ws = new WebSocket(`ws://127.0.0.1:${sevd.wsPort}/qmp`, { headers: { Authorization: 'Bearer wrong-' + token } });
  await new Promise((r) => ws.on('unexpected-response', r).on('error', r));
  await Promise.all([g.close(), agent.close(), ctl.close()]);
  await sevd.stop('SIGTERM');
  const log = sevd.log.join('\n');
  t.ok(log.includes('"msg":"qmp command"') && log.includes('"reqId"'), 'one line per command with a request id');
  const forbidden: [string, string][] = [
    ['TEK hex', owner.tek.toString('hex')], ['TIK hex', owner.tik.toString('hex')], ['TEK b64', owner.tek.toString('base64')],
    ['TIK b64', owner.tik.toString('base64')], ['secret', secret.toString()], ['secret b64', secret.toString('base64').slice(0, 24)],
    ['session', owner.sessionB64.slice(0, 40)], ['packet', pkt.secret.slice(0, 40)], ['token', token],
  ];
  for (const [what, needle] of forbidden) t.notOk(log.includes(needle), `no ${what} in ${log.split('\n').length} log lines`);
});

t.test('TLS: the listener serves wss:// and https:// with the configured certificate', async (t) => {
  const { execFileSync } = await import('node:child_process');
  const { readFileSync } = await import('node:fs');
  const dir = mkdtempSync(join(tmpdir(), 'sevd-tls-'));
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'key.pem'),
      '-out', join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  } catch {
    t.comment('openssl is not available to make a test certificate');
    return;
  }
  const sevd = await startSevd({ guests: [], websocket: { port: 0, tls: { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') } } });
  t.teardown(() => sevd.stop());
  t.ok(sevd.log.join('\n').includes('"websocket":"wss://127.0.0.1:'), 'the ready line names a wss:// URL');
  const ca = readFileSync(join(dir, 'cert.pem'));
  const ws = new WebSocket(`wss://127.0.0.1:${sevd.wsPort}/qmp`, { ca });
  const greeting = await new Promise<string>((resolve, reject) => {
    ws.once('message', (d) => resolve(d.toString()));
    ws.once('error', reject);
  });
  t.match(JSON.parse(greeting), { QMP: { capabilities: ['oob'] } });
  ws.close();
  const plain = new WebSocket(`ws://127.0.0.1:${sevd.wsPort}/qmp`);
  await t.resolves(new Promise<void>((r) => plain.on('error', () => r()).on('close', () => r())), 'plain ws:// is not served');
});
