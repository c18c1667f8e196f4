/** Every transport with a real client over a real socket. */
import t from 'tap';
import { statSync } from 'node:fs';
import { WebSocket } from 'ws';
import { RawClient } from '../helpers/raw-client.js';
import { startSevd } from '../helpers/sevd-process.js';

type Msg = { data: string; binary: boolean };
const queues = new WeakMap<WebSocket, { msgs: Msg[]; waiters: ((m: Msg) => void)[] }>();

/** Opens a WebSocket and queues its messages from the first frame on (the greeting may come with 'open'). */
function wsOpen(url: string, protocols?: string[], headers?: Record<string, string>): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, { headers });
    const q = { msgs: [] as Msg[], waiters: [] as ((m: Msg) => void)[] };
    queues.set(ws, q);
    ws.on('message', (d: Buffer, binary: boolean) => {
      const m = { data: d.toString(), binary };
      const w = q.waiters.shift();
      if (w) w(m);
      else q.msgs.push(m);
    });
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    ws.once('error', reject);
  });
}

function nextMessage(ws: WebSocket): Promise<Msg> {
  const q = queues.get(ws)!;
  const m = q.msgs.shift();
  return m ? Promise.resolve(m) : new Promise((resolve) => q.waiters.push(resolve));
}

t.test('transports', async (t) => {
  const sevd = await startSevd({ guests: [{ name: 'g1', paused: true }], websocket: { port: 0, allowedOrigins: ['https://ok.example'] } });
  t.teardown(() => sevd.stop());
  const ws = `ws://127.0.0.1:${sevd.wsPort}`;

  t.test('unix sockets are created with mode 0600', async (t) => {
    for (const p of [sevd.controlPath, sevd.guestQmp('g1'), sevd.guestQga('g1')]) {
      t.equal(statSync(p).mode & 0o777, 0o600, p);
    }
  });

  t.test('unix: coalesced and split requests, no newline needed', async (t) => {
    const c = await RawClient.connect(sevd.guestQmp('g1'));
    await c.negotiate();
    c.send('{"execute":"query-status","id":1}{"execute":"query-name","id":2}');
    t.same(await c.nextJson(), { return: { status: 'prelaunch', running: false }, id: 1 });
    t.same(await c.nextJson(), { return: { name: 'g1' }, id: 2 });
    for (const ch of '{"execute":"query-kvm","id":3}') c.send(ch);
    t.same(await c.nextJson(), { return: { enabled: true, present: true }, id: 3 });
    await c.close();
  });

  t.test('unix: a client that disconnects mid-message leaves the monitor working', async (t) => {
    const a = await RawClient.connect(sevd.guestQmp('g1'));
    await a.negotiate();
    a.send('{"execute":"query-sta');
    a.socket.destroy();
    const b = await RawClient.connect(sevd.guestQmp('g1'));
    await b.negotiate();
    t.same((await b.execute('query-name')).return, { name: 'g1' });
    await b.close();
  });

  t.test('unix: several clients on one monitor; events only after negotiation', async (t) => {
    const a = await RawClient.connect(sevd.guestQmp('g1'));
    const b = await RawClient.connect(sevd.guestQmp('g1'));
    const c = await RawClient.connect(sevd.guestQmp('g1'));
    await a.negotiate();
    await b.negotiate();
    await c.next(); // greeting only: stays in negotiation mode
    await a.execute('system_reset');
    const ev = await b.nextJson();
    t.equal(ev.event, 'RESET');
    t.same(ev.data, { guest: false, reason: 'host-qmp-system-reset' });
    t.ok(Number.isInteger(ev.timestamp.seconds) && ev.timestamp.microseconds >= 0 && ev.timestamp.microseconds < 1e6);
    t.same(await c.drain(100), [], 'no events before negotiation');
    await Promise.all([a.close(), b.close(), c.close()]);
  });

  t.test('websocket text mode: one message per frame each way', async (t) => {
    const s = await wsOpen(`${ws}/qmp/g1`);
    const greeting = await nextMessage(s);
    t.notOk(greeting.binary);
    t.match(JSON.parse(greeting.data), { QMP: { capabilities: ['oob'] } });
    t.notOk(greeting.data.endsWith('\r\n'), 'no CRLF inside a text frame');
    s.send('{"execute":"qmp_capabilities"}');
    t.same(JSON.parse((await nextMessage(s)).data), { return: {} });
    s.send('{"execute":"query-status","id":"w"}');
    t.same(JSON.parse((await nextMessage(s)).data), { return: { status: 'prelaunch', running: false }, id: 'w' });
    s.send('{"execute":');
    t.same(JSON.parse((await nextMessage(s)).data), { error: { class: 'GenericError', desc: 'JSON parse error, premature EOI' } }, 'an incomplete frame is an error, not a hang');
    s.close();
  });

  t.test('websocket binary mode: QEMU byte stream', async (t) => {
    const s = await wsOpen(`${ws}/qmp`, ['binary']);
    t.equal(s.protocol, 'binary');
    const g = await nextMessage(s);
    t.ok(g.binary);
    t.ok(g.data.endsWith('\r\n'));
    s.send(Buffer.from('{"execute":"qmp_cap'));
    s.send(Buffer.from('abilities"}{"execute":"query-guests","id":1}'));
    let text = '';
    while (!text.includes('"id": 1')) text += (await nextMessage(s)).data;
    const lines = text.split('\r\n').filter(Boolean).map((l) => JSON.parse(l));
    t.same(lines[0], { return: {} });
    t.equal(lines[1].return[0].name, 'g1');
    const closed = new Promise<number>((r) => s.once('close', (code) => r(code)));
    s.send('text frame');
    t.equal(await closed, 1003, 'text frames close the connection with 1003');
  });

  t.test('websocket guest agent', async (t) => {
    const s = await wsOpen(`${ws}/qga/g1`);
    s.send('{"execute":"guest-ping"}');
    t.same(JSON.parse((await nextMessage(s)).data), { error: { class: 'GenericError', desc: 'Guest is not running' } }, 'no greeting, no negotiation; a paused guest cannot answer');
    s.close();
  });

  t.test('websocket: unknown path 404, foreign origin 403, allowed origin ok', async (t) => {
    await t.rejects(wsOpen(`${ws}/qmp/nosuch`), /HTTP 404/);
    await t.rejects(wsOpen(`${ws}/qmp`, undefined, { Origin: 'https://evil.example' }), /HTTP 403/);
    const ok = await wsOpen(`${ws}/qmp`, undefined, { Origin: 'https://ok.example' });
    ok.close();
  });
});

t.test('websocket token', async (t) => {
  const sevd = await startSevd({ guests: [], websocket: { port: 0, token: 's3cret' } });
  t.teardown(() => sevd.stop());
  const url = `ws://127.0.0.1:${sevd.wsPort}/qmp`;
  await t.rejects(wsOpen(url), /HTTP 401/);
  await t.rejects(wsOpen(url, undefined, { Authorization: 'Bearer wrong' }), /HTTP 401/);
  (await wsOpen(url, undefined, { Authorization: 'Bearer s3cret' })).close();
  const sub = await wsOpen(url, ['token.s3cret', 'qmp']);
  t.equal(sub.protocol, 'qmp', 'the token subprotocol is never echoed');
  sub.close();
  t.notOk(sevd.log.join('\n').includes('s3cret'), 'the token never appears in the log');
});

t.test('socket mode and group are configurable', async (t) => {
  const { readFileSync } = await import('node:fs');
  const line = readFileSync('/etc/group', 'utf8').split('\n').find((l) => l.startsWith('daemon:'));
  const gid = line ? Number(line.split(':')[2]) : 1;
  const sevd = await startSevd({ socketMode: 0o660, socketGroup: line ? 'daemon' : 1, guests: [{ name: 'g', paused: true }] });
  t.teardown(() => sevd.stop());
  for (const p of [sevd.controlPath, sevd.guestQmp('g'), sevd.guestQga('g')]) {
    const st = statSync(p);
    t.equal(st.mode & 0o777, 0o660, `${p} mode`);
    t.equal(st.gid, gid, `${p} group`);
  }
});
