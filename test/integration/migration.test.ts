/**
 * SEV live migration between two sevd hosts (two chips), and its failure semantics.
 */
import t from 'tap';
import net from 'node:net';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RawClient } from '../helpers/raw-client.js';
import { freePort } from '../helpers/free-port.js';
import { monitor, targetParams, twoHosts, waitStatus } from '../helpers/migration.js';
import { buildLaunchSession, buildSecretPacket } from '../helpers/guest-owner.js';


t.test('a guest with a secret moves from host A to host B over TCP', async (t) => {
  const { A, B, ca, cb } = await twoHosts(t);
  const dir = mkdtempSync(join(tmpdir(), 'sevd-mig-'));
  const pdhA = Buffer.from((await ca.execute('query-sev-capabilities')).return.pdh, 'base64');
  const owner = buildLaunchSession(pdhA, 1); // NODBG: dumps show ciphertext
  writeFileSync(join(dir, 'godh'), owner.godhB64);
  writeFileSync(join(dir, 'session'), owner.sessionB64);
  t.same((await ca.execute('guest-add', { name: 'vm', memory: '256M', paused: true, 'sev-guest': { policy: 1, 'dh-cert-file': join(dir, 'godh'), 'session-file': join(dir, 'session') } })).return, {});
  const ga = await monitor(A, 'vm');
  const blob = (await ga.execute('query-sev-launch-measure')).return.data;
  const secret = { guid: '736869e5-84f0-4973-92ec-06879ce3da0b', data: Buffer.from('secret that must survive migration') };
  const pkt = buildSecretPacket(owner, blob, [secret]);
  t.same((await ga.execute('sev-inject-launch-secret', { 'packet-header': pkt.header, secret: pkt.secret })).return, {});
  await ga.execute('cont');
  const agentA = await RawClient.connect(A.guestQga('vm'));
  const pattern = Buffer.alloc(64 * 4096);
  for (let i = 0; i < pattern.length; i++) pattern[i] = (i * 7 + (i >> 12)) & 0xff;
  await agentA.execute('guest-memory-write', { gpa: 0x1000000, data: pattern.toString('base64') });
  await agentA.execute('guest-set-memory-attributes', { gpa: 0x2000000, size: 4096, private: false });
  await agentA.execute('guest-memory-write', { gpa: 0x2000000, data: Buffer.from('shared page').toString('base64') });
  const xpA = (await ga.execute('human-monitor-command', { 'command-line': 'xp /16xb 0x1000000' })).return;

  const port = await freePort();
  t.same((await cb.execute('guest-add', { name: 'vm', memory: '256M', incoming: `tcp:127.0.0.1:${port}`, 'sev-guest': { policy: 1 } })).return, {});
  const gb = await monitor(B, 'vm');
  t.same((await gb.execute('query-status')).return, { status: 'inmigrate', running: false });
  t.equal((await gb.execute('query-sev')).return.state, 'uninit');

  for (const [k, v] of Object.entries(await targetParams(cb))) t.same((await ga.execute('migrate-set-parameters', { [k]: v })).return, {});
  t.equal((await ga.execute('query-migrate-parameters')).return['sev-pdh'].length, 2780);
  await ga.execute('migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true }] });
  // Keep writing during the migration: those pages must be sent again.
  let writes = 0;
  const writer = (async () => {
    for (; writes < 30; writes++) {
      const r = await agentA.execute('guest-memory-write', { gpa: 0x1000000 + writes * 4096, data: Buffer.from(`rewritten ${writes}`).toString('base64') });
      if (!('return' in r)) break;
      pattern.write(`rewritten ${writes}`, writes * 4096);
    }
  })();
  t.same((await ga.execute('migrate', { uri: `tcp:127.0.0.1:${port}` })).return, {});
  const done = await waitStatus(ga, ['completed', 'failed']);
  await writer;
  t.equal(done.status, 'completed', JSON.stringify(done) + ' target: ' + JSON.stringify((await gb.execute('query-migrate')).return));
  t.ok(done.ram.transferred > 64 * 4096 && done.downtime >= 0, 'statistics');
  t.same((await ga.execute('query-status')).return, { status: 'postmigrate', running: false });
  t.equal((await ga.execute('query-sev')).return.state, 'running', 'QMP still shows running on the source');
  const events: string[] = [];
  for (const l of ga.lines.splice(0)) {
    const m = JSON.parse(l);
    if (m.event) events.push(m.event === 'MIGRATION' ? `MIGRATION:${m.data.status}` : m.event);
  }
  t.match(events.join(' '), /MIGRATION:setup MIGRATION:active .*MIGRATION_PASS.*STOP.*MIGRATION:completed/, events.join(' '));

  await waitStatus(gb, ['completed']);
  await new Promise((r) => setTimeout(r, 100));
  t.same((await gb.execute('query-status')).return, { status: 'running', running: true }, 'B runs (autostart)');
  const sevB = (await gb.execute('query-sev')).return;
  t.match(sevB, { enabled: true, state: 'running', policy: 1 });
  t.same((await gb.execute('query-sev-launch-measure')).error.desc, 'SEV launch measurement is not available');
  const agentB = await RawClient.connect(B.guestQga('vm'));
  const readB = Buffer.from((await agentB.execute('guest-memory-read', { gpa: 0x1000000, size: pattern.length })).return.data, 'base64');
  t.ok(readB.equals(pattern), `B reads the same plaintext, including ${writes} pages rewritten during migration`);
  t.same((await agentB.execute('guest-get-secrets')).return, [{ guid: secret.guid, data: secret.data.toString('base64') }], 'and the same secrets');
  t.equal(Buffer.from((await agentB.execute('guest-memory-read', { gpa: 0x2000000, size: 11 })).return.data, 'base64').toString(), 'shared page');
  const xpB = (await gb.execute('human-monitor-command', { 'command-line': 'xp /16xb 0x1000000' })).return;
  t.not(xpB.split(':')[1], xpA.split(':')[1], 'B stores the page under another key');
  t.notMatch(xpA + xpB, new RegExp(Array.from(pattern.subarray(0, 4)).map((b) => '0x' + b.toString(16).padStart(2, '0')).join(' ')), 'no plaintext on either host');

  // The source never runs again.
  t.same((await ga.execute('cont')).return, {});
  await new Promise((r) => setTimeout(r, 100));
  t.same((await ga.execute('query-status')).return, { status: 'internal-error', running: false }, 'cont after SEND_FINISH ends in internal-error');
  await Promise.all([ga.close(), gb.close(), ca.close(), cb.close(), agentA.close(), agentB.close()]);
});

t.test('failures: NOSEND, target gone, tampered stream, cancel; snapshot to a file and back', async (t) => {
  const { A, B, ca, cb } = await twoHosts(t);
  const params = await targetParams(cb);
  await ca.execute('guest-add', { name: 'nosend', memory: '64M', 'sev-guest': { policy: 0x8 } });
  await ca.execute('guest-add', { name: 'ok', memory: '64M', 'sev-guest': { policy: 0 } });
  const gn = await monitor(A, 'nosend');
  const go = await monitor(A, 'ok');
  for (const g of [gn, go]) for (const [k, v] of Object.entries(params)) await g.execute('migrate-set-parameters', { [k]: v });

  // NOSEND: fails before any byte is sent (nobody even listens on that port).
  const closedPort = await freePort();
  t.same((await gn.execute('migrate', { uri: `tcp:127.0.0.1:${closedPort}` })).return, {});
  const f1 = await waitStatus(gn, ['failed']);
  t.equal(f1['error-desc'], 'SEV: SEND_START failed: fw_err=7 (Policy is not allowed)');
  t.same((await gn.execute('query-status')).return.status, 'running', 'the source keeps running');

  // Target not there: SEND_CANCEL, the source keeps running and can migrate later.
  t.same((await go.execute('migrate', { uri: `tcp:127.0.0.1:${closedPort}` })).return, {});
  const f2 = await waitStatus(go, ['failed']);
  t.match(f2['error-desc'], /ECONNREFUSED/);
  t.same((await go.execute('query-status')).return.status, 'running');
  t.equal((await go.execute('query-sev')).return.state, 'running');
  t.same((await go.execute('migrate', { uri: 'ftp:x' })).error.desc, 'unknown migration protocol: ftp:x');

  // A target that refuses a tampered packet: a man in the middle flips one byte of a packet.
  const port = await freePort();
  await cb.execute('guest-add', { name: 'in', memory: '64M', incoming: `tcp:127.0.0.1:${port}`, 'sev-guest': { policy: 0 } });
  const relayPort = await freePort();
  let flipped = false;
  const relay = net.createServer((src) => {
    const dst = net.connect(port, '127.0.0.1');
    let seen = 0;
    src.on('data', (d: Buffer) => {
      if (!flipped && seen + d.length > 20000) {
        const at = Math.max(0, 20000 - seen);
        d = Buffer.from(d);
        d[at] ^= 0xff;
        flipped = true;
      }
      seen += d.length;
      dst.write(d);
    });
    dst.on('data', (d) => src.write(d));
    src.on('close', () => dst.destroy());
    dst.on('close', () => src.destroy());
    src.on('error', () => undefined);
    dst.on('error', () => undefined);
  });
  await new Promise<void>((r) => relay.listen(relayPort, '127.0.0.1', r));
  const gi = await monitor(B, 'in');
  t.same((await go.execute('migrate', { uri: `tcp:127.0.0.1:${relayPort}` })).return, {});
  const f3 = await waitStatus(go, ['failed', 'completed']);
  t.equal(f3.status, 'failed', 'the source sees the failure');
  const fi = await waitStatus(gi, ['failed']);
  t.match(fi['error-desc'], /RECEIVE_UPDATE_DATA failed: fw_err=11 \(Bad measurement\)|stream|flags|length/, fi['error-desc']);
  t.same((await cb.execute('sev-platform-status')).return['guest-count'], 0, 'the half-received guest is discarded, its ASID freed');
  t.same((await go.execute('query-status')).return.status, 'running', 'the source keeps running');
  relay.close();

  // Cancel.
  const slowPort = await freePort();
  await cb.execute('guest-add', { name: 'in2', memory: '64M', incoming: `tcp:127.0.0.1:${slowPort}`, 'sev-guest': { policy: 0 } });
  await go.execute('migrate-set-parameters', { 'max-bandwidth': 65536 });
  await go.execute('migrate', { uri: `tcp:127.0.0.1:${slowPort}` });
  await waitStatus(go, ['active']);
  t.same((await go.execute('migrate')).error.desc, "need either 'uri' or 'channels' argument");
  t.same((await go.execute('migrate', { uri: 'tcp:127.0.0.1:1' })).error.desc, "There's a migration process in progress");
  t.same((await go.execute('migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true }] })).error.desc, "There's a migration process in progress");
  t.same((await go.execute('migrate_cancel')).return, {});
  t.equal((await waitStatus(go, ['cancelled'])).status, 'cancelled');
  t.same((await go.execute('query-status')).return.status, 'running');
  await go.execute('migrate-set-parameters', { 'max-bandwidth': 134217728 });

  // Snapshot: file:PATH bound to the host's own PDH, restored on the same host.
  const snap = join(mkdtempSync(join(tmpdir(), 'sevd-snap-')), 'vm.snap');
  const agent = await RawClient.connect(A.guestQga('ok'));
  await agent.execute('guest-memory-write', { gpa: 0x100000, data: Buffer.from('snapshot me').toString('base64') });
  await go.execute('migrate-set-parameters', { 'sev-pdh': null, 'sev-plat-cert': null, 'sev-amd-cert': null });
  t.same((await go.execute('query-migrate-parameters')).return['sev-pdh'], '', 'null stores ""');
  await go.execute('migrate', { uri: `file:${snap}` });
  t.equal((await waitStatus(go, ['completed', 'failed'])).status, 'completed');
  t.equal(readFileSync(snap).indexOf(Buffer.from('snapshot me')), -1, 'the snapshot holds no plaintext of private pages');
  await ca.execute('guest-add', { name: 'restored', memory: '64M', incoming: 'defer', 'sev-guest': { policy: 0 } });
  const gr = await monitor(A, 'restored');
  // RECEIVE_START held for 300 ms: the second migrate-incoming surely finds the first one running.
  await ca.execute('inject-fault', { target: 'firmware', command: 'RECEIVE_START', status: 0, 'delay-ms': 300, guest: 'restored', count: 1 });
  t.same((await gr.execute('migrate-incoming', { uri: `file:${snap}` })).return, {});
  t.same((await gr.execute('migrate-incoming', { uri: `file:${snap}` })).error.desc, 'The incoming migration has already been started');
  await waitStatus(gr, ['completed']);
  t.match((await ca.execute('query-faults')).return, [{ command: 'RECEIVE_START', fired: 1 }], 'the delay was served');
  await new Promise((r) => setTimeout(r, 100));
  const ar = await RawClient.connect(A.guestQga('restored'));
  t.equal(Buffer.from((await ar.execute('guest-memory-read', { gpa: 0x100000, size: 11 })).return.data, 'base64').toString(), 'snapshot me', 'restored');
  t.same((await go.execute('migrate-incoming', { uri: 'tcp:127.0.0.1:1' })).error.desc, "'-incoming' was not specified on the command line");
  await Promise.all([gn.close(), go.close(), gi.close(), gr.close(), ca.close(), cb.close(), agent.close(), ar.close()]);
});
