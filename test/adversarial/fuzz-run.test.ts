/**
 * A bounded adversarial run against one daemon: random and mutated HTTP request lines and
 * headers (WebSocket upgrades among them, so random monitor paths too) and HMP command
 * lines, migration streams into incoming SEV guests (framing kept, fields mutated), and SNP guest messages (sealed with the guest's VMPCKs, fields and lengths mutated,
 * or the sealed bytes mutated). Afterwards the daemon answers, its memory stayed within a bound, no guest changed
 * state and no ASID leaked. The seed is printed; `SEVD_FUZZ_SEED=<n>` replays a run.
 */
import t, { type Test } from 'tap';
import { QmpClient } from '../../clients/qmp/client.js';
import { startSevd, type SevdProcess } from '../helpers/sevd-process.js';
import { memoryOf, rawHttp } from '../helpers/raw-http.js';
import { Prng } from '../helpers/prng.js';
import { existsSync } from 'node:fs';
import { RawClient } from '../helpers/raw-client.js';
import { streamHostileRecords } from '../helpers/hostile-peer.js';
import { freePort } from '../helpers/free-port.js';
import { MSG, openSnpMessage, readVmpcks, reportRequest, sealSnpMessage } from '../helpers/snp-message.js';

const OVMF = '/usr/share/OVMF/OVMF_CODE.fd';
const HAVE_OVMF = existsSync(OVMF);

const FULL = 'fuzz-full-token';
const RO = 'fuzz-read-only-token';
/** What the daemon may hold at most after the run (idle it is ~150 MiB with these guests). */
const PEAK_RSS_BOUND_MIB = 512;

const rng = Prng.fromEnv();
t.comment(`fuzz seed ${rng.seed} (SEVD_FUZZ_SEED=${rng.seed} replays it)`);

/** Everything a refused or harmless request must leave as it was. */
async function snapshot(ctl: QmpClient, sev: QmpClient) {
  return {
    guests: await ctl.execute('query-guests'),
    asids: await ctl.execute('query-asids'),
    platform: await ctl.execute('sev-platform-status'),
    measure: await sev.execute('query-sev-launch-measure'),
    sev: await sev.execute('query-sev'),
  };
}

function randomPath(port: number, chip: string): string {
  const base = rng.pick(['/qmp', '/qmp/sev', '/qmp/plain', '/qga/sev', '/', '/metrics', '/healthz', '/app.js', `/vcek/v1/Milan/${chip}?blSPL=1&teeSPL=0&snpSPL=8&ucodeSPL=${rng.int(300)}`, '/vcek/v1/Milan/cert_chain', '']);
  switch (Math.max(0, rng.int(10) - 4)) {
    case 0: return base || '/';
    case 1: return base + '/' + rng.text(1 + rng.int(40), 'abc%/.-_~\\:@!$&\'()*+,;=09AZ');
    case 2: return base + '%' + rng.text(rng.int(3), '0123456789ABCDEFGZ%');
    case 3: return base + rng.bytes(1 + rng.int(16)).toString('latin1').replace(/[\r\n ]/g, '%');
    case 4: return '/' + 'a'.repeat(rng.int(9000));
    default: return rng.pick([`http://127.0.0.1:${port}/qmp`, '*', '//qmp', '/qmp?x=%', '/qmp#%', '/..%2f..%2fetc%2fpasswd', '/qmp/%00']);
  }
}

function randomRequest(port: number, chip: string): string {
  const method = rng.pick(['GET', 'GET', 'GET', 'POST', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'G\u0000T', rng.text(1 + rng.int(8), 'ABCXYZ')]);
  const version = rng.pick(['HTTP/1.1', 'HTTP/1.1', 'HTTP/1.1', 'HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'HTTP/1.1x', '']);
  const headers: string[] = [];
  const maybe = (p: number, line: () => string) => rng.int(100) < p && headers.push(line());
  maybe(95, () => `Host: ${rng.pick([`127.0.0.1:${port}`, `127.0.0.1:${port}`, `localhost:${port}`, 'evil.example', '', '[::1', `127.0.0.1:${port}, evil`, rng.text(20, 'a.:[]0%')])}`);
  const upgrade = rng.int(100) < 60;
  if (upgrade) {
    headers.push('Connection: Upgrade', `Upgrade: ${rng.pick(['websocket', 'websocket', 'websocket', 'websocket', 'WebSocket', 'h2c', ''])}`);
    maybe(90, () => `Sec-WebSocket-Key: ${rng.pick(['dGhlIHNhbXBsZSBub25jZQ==', rng.bytes(16).toString('base64'), rng.bytes(16).toString('base64'), rng.text(rng.int(40), 'A=+/')])}`);
    maybe(95, () => `Sec-WebSocket-Version: ${rng.pick(['13', '13', '13', '13', '13', '8', 'x'])}`);
    maybe(40, () => `Sec-WebSocket-Protocol: ${rng.pick(['binary', `token.${FULL}`, `token.${RO}`, 'token.', rng.text(30, 'a,. ')])}`);
    maybe(20, () => `Sec-WebSocket-Extensions: ${rng.pick(['permessage-deflate', 'permessage-deflate; client_max_window_bits=8', rng.text(20, 'a;=,')])}`);
  }
  maybe(70, () => `Authorization: ${rng.pick([`Bearer ${FULL}`, `Bearer ${RO}`, 'Bearer ', 'Basic x', `Bearer ${rng.text(40, 'ab')}`])}`);
  maybe(30, () => `Origin: ${rng.pick([`http://127.0.0.1:${port}`, 'http://evil.example', 'null', rng.text(10, 'a:/')])}`);
  maybe(15, () => `Content-Length: ${rng.pick(['0', '5', '-1', '99999999999', 'x'])}`);
  maybe(10, () => 'Transfer-Encoding: chunked');
  maybe(10, () => `${rng.text(1 + rng.int(10), 'Xx-')}: ${rng.bytes(rng.int(200)).toString('latin1').replace(/[\r\n]/g, ' ')}`);
  maybe(3, () => `X-Big: ${'b'.repeat(20000)}`);
  return `${method} ${randomPath(port, chip)} ${version}\r\n${headers.join('\r\n')}${headers.length ? '\r\n' : ''}\r\n${rng.int(20) === 0 ? rng.bytes(rng.int(64)).toString('latin1') : ''}`;
}

function randomHmp(): string {
  const word = rng.pick(['xp', 'xp', 'xp', 'info', 'x', 'memsave', 'cont', 'stop', 'quit', '', rng.text(1 + rng.int(8), 'abcxpinfo_-')]);
  if (word === 'info') return `info ${rng.pick(['status', 'sev', '', 'registers', rng.text(8, 'abc')])}`;
  const fmt = rng.int(3) === 0 ? '' : `/${rng.pick(['', String(rng.int(20000)), String(rng.int(2 ** 31)), '99999999999999999999999', '-1'])}${rng.text(rng.int(3), 'xduocibhwgzq')}`;
  const addr = rng.pick(['0', '0x1000', `0x${rng.next().toString(16)}`, '-1', 'garbage', '0xfffffffffffffffffffff', '4096 4096', '', String(rng.int(64 << 20))]);
  return `${word}${fmt} ${addr}`;
}

async function pool<T>(items: T[], width: number, run: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < items.length) await run(items[next++]!);
  }));
}

t.test('a bounded adversarial run leaves the host as it was', async (t) => {
  const sevd: SevdProcess = await startSevd({
    platform: { generation: 'milan', seed: 'f022' },
    websocket: { port: 0, token: FULL, tokens: [{ token: RO, access: 'read-only' }] },
    guests: [
      { name: 'sev', memory: '64M', paused: true, 'sev-guest': { policy: 1 } },
      { name: 'plain', memory: '16M', paused: true },
      ...(HAVE_OVMF ? [{ name: 'snp', memory: '128M', firmware: OVMF, 'sev-snp-guest': {} }] : []),
    ],
  });
  t.teardown(() => sevd.stop());
  const port = sevd.wsPort!;
  const ctl = await QmpClient.connect(sevd.controlPath);
  const sev = await QmpClient.connect(sevd.guestQmp('sev'));
  t.teardown(async () => { await ctl.close(); await sev.close(); });
  const chip = (await ctl.execute('sev-snp-platform-status') as { 'chip-id': string })['chip-id'];
  const before = await snapshot(ctl, sev);

  // HTTP request lines and headers, WebSocket upgrades and monitor paths among them.
  const statuses: Record<string, number> = {};
  await pool(Array.from({ length: 400 }, () => randomRequest(port, chip)), 8, async (req) => {
    const r = await rawHttp(port, req, 1500).then((x) => String(x.status), () => 'closed');
    statuses[r] = (statuses[r] ?? 0) + 1;
  });
  t.comment(`HTTP answers: ${JSON.stringify(statuses)}`);
  t.equal(sevd.proc.exitCode, null, '400 hostile HTTP requests: the daemon runs');
  t.notOk(statuses['500'], 'no request made the server fail (500)');

  // HMP command lines, on the guest monitor with full access.
  let hmpErrors = 0;
  const lines = Array.from({ length: 600 }, randomHmp);
  for (const line of lines) {
    try {
      const out = await sev.execute('human-monitor-command', { 'command-line': line });
      if (typeof out !== 'string') t.fail(`HMP ${JSON.stringify(line)} answered ${JSON.stringify(out)}`);
      else if (out.length > 400 * 1024) t.fail(`HMP ${JSON.stringify(line)}: ${out.length} bytes`);
    } catch (e) {
      hmpErrors++;
      if (/internal error/.test(String(e))) t.fail(`HMP ${JSON.stringify(line)}: ${String(e)}`);
    }
  }
  t.comment(`HMP: ${lines.length} lines, ${hmpErrors} QMP errors`);
  t.equal(sevd.proc.exitCode, null, '600 hostile HMP lines: the daemon runs');

  // Migration streams: each refused stream is followed by a fresh incoming guest; all are
  // deleted afterwards, and with them every context and ASID they may have taken.
  const incoming: string[] = [];
  const nextPort = async () => {
    const port = await freePort();
    const name = `in${incoming.length}`;
    await ctl.execute('guest-add', { name, memory: '64M', incoming: `tcp:127.0.0.1:${port}`, 'sev-guest': { policy: 1 } });
    incoming.push(name);
    return port;
  };
  const pdh = (await ctl.execute('query-sev-capabilities') as { pdh: string }).pdh;
  const peer = await streamHostileRecords({ port: await nextPort(), durationMs: 2500, ramBytes: 64 << 20, targetPdhB64: pdh, seed: rng.int(2 ** 31), nextPort });
  t.comment(`migration: ${peer.records} records, ${(peer.bytes / 2 ** 20).toFixed(1)} MiB, ${peer.refused} streams refused (seed ${peer.seed})`);
  t.equal(sevd.proc.exitCode, null, 'hostile migration streams: the daemon runs');
  // The target's PDH is public, so a peer can build a real session and a complete stream:
  // such a guest runs, encrypted under the peer's keys like any guest it launched. What must
  // never happen is a guest running without its encryption context.
  let ran = 0;
  for (const name of incoming) {
    const g = await QmpClient.connect(sevd.guestQmp(name));
    const st = await g.execute('query-status') as { status: string };
    const sevState = await g.execute('query-sev') as { state: string; enabled: boolean };
    await g.close();
    if (st.status === 'running') {
      ran++;
      if (!sevState.enabled || sevState.state !== 'running') t.fail(`${name}: running with SEV state ${sevState.state}`);
    }
    await ctl.execute('guest-del', { name });
  }
  t.comment(`migration: ${ran} of ${incoming.length} incoming guests completed a forged but well-keyed stream, each encrypted`);

  if (HAVE_OVMF) await snpMessages(t, sevd);
  else t.comment('SNP guest messages skipped: Debian ovmf is not installed');

  t.same(await snapshot(ctl, sev), before, 'no guest changed state, no ASID leaked, the platform is as it was');
  const mem = memoryOf(sevd.proc.pid!);
  t.ok(mem.peakMiB < PEAK_RSS_BOUND_MIB, `peak RSS ${mem.peakMiB.toFixed(0)} MiB (bound ${PEAK_RSS_BOUND_MIB})`);
  const fresh = await QmpClient.connect(`ws://127.0.0.1:${port}/qmp`, { headers: { Authorization: `Bearer ${FULL}` } });
  t.ok(Array.isArray(await fresh.execute('query-guests')), 'a new WebSocket client is served');
  await fresh.close();
});

/**
 * SNP guest messages from hostile guest code: well sealed with a random type, VMPCK, VMPL,
 * payload length and sequence number, or sealed bytes mutated. Each VMPCK's sequence number
 * is tracked from the answers, and at the end a well-formed request at the expected number
 * must still get its report: nothing a refused message did moved the counters.
 */
async function snpMessages(t: Test, sevd: SevdProcess): Promise<void> {
  const agent = await RawClient.connect(sevd.guestQga('snp'));
  const vmpcks = await readVmpcks(agent, OVMF);
  const next = [1n, 1n, 1n, 1n];
  const outcomes: Record<string, number> = {};
  for (let i = 0; i < 300; i++) {
    const vmpck = rng.int(4);
    const seqno = rng.int(4) === 0 ? BigInt(rng.int(8)) : next[vmpck]!;
    const type = rng.pick([MSG.REPORT_REQ, MSG.REPORT_REQ, MSG.KEY_REQ, 0, 1, 2, 6, 7, 255]);
    const payload = rng.int(3) === 0 ? reportRequest(rng.bytes(64), rng.int(5)) : rng.bytes(rng.pick([0, 4, 31, 32, 95, 96, 97, 200, 4000]));
    const key = rng.int(8) === 0 ? rng.bytes(32) : vmpcks[vmpck]!;
    let request = sealSnpMessage(key, { seqno, type, vmpck, payload });
    if (rng.int(4) === 0) request = rng.mutate(Buffer.from(request, 'base64')).toString('base64');
    const r = await agent.execute('guest-snp-message', { request });
    if (r.error) {
      if (/internal error/.test(r.error.desc)) t.fail(`SNP message ${i}: ${r.error.desc}`);
      outcomes[r.error.desc.replace(/\d+/g, 'N')] = (outcomes[r.error.desc.replace(/\d+/g, 'N')] ?? 0) + 1;
      continue;
    }
    const rsp = openSnpMessage(vmpcks[Buffer.from(r.return.response, 'base64')[60]!]!, r.return.response);
    next[rsp.vmpck] = rsp.seqno + 1n;
    outcomes['answered'] = (outcomes['answered'] ?? 0) + 1;
  }
  t.comment(`SNP messages: ${JSON.stringify(outcomes)}`);
  const last = await agent.execute('guest-snp-message', { request: sealSnpMessage(vmpcks[0]!, { seqno: next[0]!, type: MSG.REPORT_REQ, vmpck: 0, payload: reportRequest(Buffer.alloc(64, 7), 0) }) });
  t.ok(last.return, `a well-formed report request at the tracked sequence number (${next[0]}) is answered`);
  t.same((await agent.execute('guest-ping')).return, {}, 'the SNP guest agent answers');
  await agent.close();
}
