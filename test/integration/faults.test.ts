/**
 * Fault injection (docs/interface.md §13), as a developer testing a management tool uses it: every
 * firmware command a QMP command or a guest launch uses fails on demand with QEMU's exact
 * text, nothing is left behind, and the next call succeeds once the fault is used up;
 * migration connections are cut, corrupted or stalled; monitors delay replies or hang up.
 */
import t from 'tap';
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RawClient } from '../helpers/raw-client.js';
import { freePort } from '../helpers/free-port.js';
import { startSevd, type SevdProcess } from '../helpers/sevd-process.js';
import { buildLaunchSession, buildSecretPacket, writeSessionFiles } from '../helpers/guest-owner.js';
import { monitor, targetParams, twoHosts, waitStatus } from '../helpers/migration.js';
import { decodeSevCert, encodeSevCert, Usage } from '../../abi/certs/sev-cert.js';
import { makeOcaCert, signSlot } from '../../abi/certs/issue.js';
import { newP384Key } from '../../server/firmware/keys.js';

const OVMF = '/usr/share/OVMF/OVMF_CODE.fd';

async function connect(path: string) {
  const c = await RawClient.connect(path);
  await c.negotiate();
  return c;
}

/** What a failed guest-add must not leave: guests, firmware contexts, sockets. */
async function hostState(sevd: SevdProcess, ctl: RawClient) {
  return {
    guests: (await ctl.execute('query-guests')).return.map((g: any) => g.name),
    contexts: (await ctl.execute('sev-platform-status')).return['guest-count'],
    sockets: readdirSync(join(sevd.runDir, 'guests')).sort(),
  };
}

const faultEvents = async (c: RawClient) => (await c.drain(60, 500)).map((l) => JSON.parse(l)).filter((m) => m.event === 'SEVD_FAULT');

t.test('guest launch: each firmware command fails with QEMU\'s text, leaves nothing, and the next launch works', async (t) => {
  const sevd = await startSevd({ guests: [] });
  t.teardown(() => sevd.stop());
  const ctl = await connect(sevd.controlPath);
  const clean = await hostState(sevd, ctl);
  const es = existsSync(OVMF) ? { firmware: OVMF, smp: 2 } : {};
  const cases: [string, number | string, Record<string, unknown>, string][] = [
    ['PLATFORM_STATUS', 'HWERROR_PLATFORM', {}, "sev_common_kvm_init: failed to get platform status ret=-1 fw_error='19: Hardware error'"],
    ['LAUNCH_START', 'INVALID_CERTIFICATE', {}, 'SEV: LAUNCH_START failed: fw_err=6 (Certificate is invalid)'],
    ['ACTIVATE', 'INVALID_ASID', {}, 'SEV: ACTIVATE failed: fw_err=13 (Invalid ASID)'],
    ['LAUNCH_UPDATE_DATA', 21, {}, 'SEV: LAUNCH_UPDATE_DATA failed: fw_err=21 (Feature not supported)'],
    ['LAUNCH_UPDATE_VMSA', 'RESOURCE_LIMIT', { policy: 5, ...es }, 'SEV: LAUNCH_UPDATE_VMSA failed: fw_err=23 (Required firmware resource depleted)'],
    ['LAUNCH_MEASURE', 'HWERROR_UNSAFE', {}, 'SEV: LAUNCH_MEASURE failed: fw_err=20 (Hardware unsafe)'],
  ];
  for (const [command, status, extra, text] of cases) {
    const { policy = 1, ...rest } = extra as { policy?: number };
    const spec = { name: 'g', paused: true, memory: '64M', ...rest, 'sev-guest': { policy } };
    const id = (await ctl.execute('inject-fault', { target: 'firmware', command, status, guest: 'g' })).return.id;
    t.same((await ctl.execute('guest-add', spec)).error, { class: 'GenericError', desc: text }, `${command}: ${text}`);
    t.same(await hostState(sevd, ctl), clean, `${command}: no guest, context or socket left`);
    const ev = await faultEvents(ctl);
    t.match(ev, [{ event: 'SEVD_FAULT', data: { id, target: 'firmware', detail: new RegExp(`^${command} for g: status \\d+`) } }], `${command}: SEVD_FAULT`);
    t.same((await ctl.execute('guest-add', spec)).return, {}, `${command}: the next launch succeeds`);
    t.same((await ctl.execute('guest-del', { name: 'g' })).return, {});
  }
  const listed = (await ctl.execute('query-faults')).return;
  t.equal(listed.length, cases.length, 'query-faults lists them');
  t.match(listed[1], { target: 'firmware', command: 'LAUNCH_START', status: 6, guest: 'g', count: 1, fired: 1, remaining: 0 });
  t.same((await ctl.execute('clear-faults')).return, {});
  t.same((await ctl.execute('query-faults')).return, []);
  // A fault for another guest does not fire.
  await ctl.execute('inject-fault', { target: 'firmware', command: 'LAUNCH_START', status: 6, guest: 'other' });
  t.same((await ctl.execute('guest-add', { name: 'g', paused: true, memory: '64M', 'sev-guest': { policy: 1 } })).return, {}, 'a fault for another guest is ignored');
  t.match((await ctl.execute('query-faults')).return, [{ fired: 0, remaining: 1 }]);
  const metrics = await (await fetch(`http://127.0.0.1:${sevd.wsPort}/metrics`)).text();
  t.match(metrics, new RegExp(`sevd_faults_fired_total\\{target="firmware"\\} ${cases.length}`), '/metrics counts fired faults');
  t.match(metrics, /sevd_firmware_commands_total\{command="LAUNCH_START",status="6"\} 1/, 'and the firmware command as failed');
  t.same((await ctl.execute('inject-fault', { target: 'firmware', command: 'NO_SUCH', status: 1 })).error.class, 'GenericError');
  t.match((await ctl.execute('inject-fault', { target: 'firmware', command: 'PEK_GEN', status: 'NO_SUCH_STATUS' })).error.desc, /^Parameter 'status' expects a firmware status/);
  await ctl.close();
});

t.test('guest and platform commands: each firmware failure as QEMU words it; the next call succeeds', async (t) => {
  const sevd = await startSevd({ guests: [] });
  t.teardown(() => sevd.stop());
  const ctl = await connect(sevd.controlPath);
  const statusOf = (text: string) => Number(/(?:fw_err(?:or)?=|fw_error=')(\d+)/.exec(text)![1]);
  const check = async (c: RawClient, cmd: string, args: unknown, fwCmd: string, text: string) => {
    const certs = (await ctl.execute('sev-export-certs')).return;
    await ctl.execute('inject-fault', { target: 'firmware', command: fwCmd, status: statusOf(text) });
    t.same((await c.execute(cmd, args)).error, { class: 'GenericError', desc: text }, `${cmd} with ${fwCmd} failing: ${text}`);
    t.same((await ctl.execute('sev-export-certs')).return, certs, `${cmd}: the platform keys are unchanged`);
    const again = await c.execute(cmd, args);
    t.ok('return' in again, `${cmd}: the next call succeeds`);
  };
  // Platform commands (the platform is idle: INIT).
  const csr = decodeSevCert(Buffer.from((await ctl.execute('sev-pek-csr')).return.data, 'base64'));
  const oca = newP384Key();
  const importArgs = { 'pek-cert': encodeSevCert(signSlot(csr, 0, Usage.OCA, oca)).toString('base64'), 'oca-cert': makeOcaCert(oca, { major: 0, minor: 0 }).toString('base64') };
  await check(ctl, 'sev-pek-cert-import', importArgs, 'PEK_CERT_IMPORT', 'SEV: PEK_CERT_IMPORT failed: fw_err=10 (Bad signature)');
  await check(ctl, 'sev-pek-gen', undefined, 'PEK_GEN', 'SEV: PEK_GEN failed: fw_err=1 (Platform state is invalid)');
  await check(ctl, 'sev-pdh-gen', undefined, 'PDH_GEN', 'SEV: PDH_GEN failed: fw_err=19 (Hardware error)');
  await check(ctl, 'sev-pek-csr', undefined, 'PEK_CSR', 'SEV: PEK_CSR failed: fw_err=19 (Hardware error)');
  await check(ctl, 'sev-factory-reset', undefined, 'FACTORY_RESET', 'SEV: FACTORY_RESET failed: fw_err=19 (Hardware error)');
  await check(ctl, 'sev-platform-status', undefined, 'PLATFORM_STATUS', 'SEV: PLATFORM_STATUS failed: fw_err=19 (Hardware error)');
  await check(ctl, 'sev-export-certs', undefined, 'PDH_CERT_EXPORT', 'SEV: PDH_CERT_EXPORT failed: fw_err=1 (Platform state is invalid)');
  await check(ctl, 'query-sev-capabilities', undefined, 'GET_ID', 'SEV: Failed to get ID ret=-1 fw_err=19 (Hardware error)');

  // Guest commands.
  const dir = mkdtempSync(join(tmpdir(), 'sevd-faults-'));
  const pdh = Buffer.from((await ctl.execute('query-sev-capabilities')).return.pdh, 'base64');
  const owner = buildLaunchSession(pdh, 1);
  await ctl.execute('guest-add', { name: 'g', paused: true, memory: '64M', 'sev-guest': { policy: 1, ...writeSessionFiles(dir, 'g', owner) } });
  const g = await connect(sevd.guestQmp('g'));
  const blob = (await g.execute('query-sev-launch-measure')).return.data;
  const pkt = buildSecretPacket(owner, blob, [{ guid: '736869e5-84f0-4973-92ec-06879ce3da0b', data: Buffer.from('s') }]);
  await check(g, 'query-sev-capabilities', undefined, 'PDH_CERT_EXPORT', 'SEV: Failed to export PDH cert ret=-1 fw_err=1 (Platform state is invalid)');
  await check(g, 'query-sev-attestation-report', { mnonce: Buffer.alloc(16).toString('base64') }, 'ATTESTATION', 'SEV: Failed to query the attestation report length ret=-5 fw_err=19 (Hardware error)');
  await ctl.execute('inject-fault', { target: 'firmware', command: 'LAUNCH_SECRET', status: 11, guest: 'g' });
  t.same((await g.execute('sev-inject-launch-secret', { 'packet-header': pkt.header, secret: pkt.secret })).error.desc, "SEV: failed to inject secret ret=-5 fw_error=11 'Bad measurement'");
  t.equal((await g.execute('query-sev')).return.state, 'launch-secret', 'the guest still waits for its secret');
  t.same((await g.execute('sev-inject-launch-secret', { 'packet-header': pkt.header, secret: pkt.secret })).return, {}, 'the next injection succeeds');
  await ctl.execute('inject-fault', { target: 'firmware', command: 'LAUNCH_FINISH', status: 2, guest: 'g' });
  t.same((await g.execute('cont')).error.desc, 'SEV: LAUNCH_FINISH failed: fw_err=2 (Guest state is invalid)');
  t.same((await g.execute('query-status')).return.status, 'prelaunch', 'cont: the guest did not start');
  t.same((await g.execute('cont')).return, {}, 'the next cont starts it');
  t.same((await g.execute('query-sev')).return.state, 'running');
  await g.close();
  await ctl.close();
});

t.test('a delay-only fault slows the launch by the injected time and changes nothing else', async (t) => {
  const sevd = await startSevd({ guests: [] });
  t.teardown(() => sevd.stop());
  const ctl = await connect(sevd.controlPath);
  const launch = async (name: string) => {
    const t0 = performance.now();
    const r = await ctl.execute('guest-add', { name, paused: true, memory: '64M', 'sev-guest': { policy: 1 } });
    return { ms: performance.now() - t0, r };
  };
  await launch('warm-up');
  const base = await launch('a');
  await ctl.execute('inject-fault', { target: 'firmware', command: 'LAUNCH_UPDATE_DATA', status: 0, 'delay-ms': 400 });
  const other = await connect(sevd.controlPath);
  const pending = launch('b');
  const tq = performance.now();
  await other.execute('query-guests');
  t.ok(performance.now() - tq < 200, 'other monitors keep answering meanwhile');
  const slow = await pending;
  t.same(slow.r.return, {}, 'the launch succeeds');
  t.ok(slow.ms - base.ms >= 350, `slower by ${(slow.ms - base.ms).toFixed(0)} ms (injected 400)`);
  const g = await connect(sevd.guestQmp('b'));
  t.equal((await g.execute('query-sev')).return.state, 'launch-secret', 'same state as an undelayed launch');
  t.equal((await g.execute('query-sev-launch-measure')).return.data.length, 64);
  await Promise.all([g.close(), other.close(), ctl.close()]);
});

t.test('monitor faults: delayed replies stay in order; a disconnect before the reply leaves the command done', async (t) => {
  const sevd = await startSevd({ guests: [{ name: 'g', memory: '64M', paused: true }] });
  t.teardown(() => sevd.stop());
  const ctl = await connect(sevd.controlPath);
  const g = await connect(sevd.guestQmp('g'));
  t.same((await ctl.execute('inject-fault', { target: 'monitor', guest: 'g', action: 'delay', 'delay-ms': 2000, count: 1 })).return, { id: 1 });
  const t0 = performance.now();
  g.send('{"execute":"query-status","id":1}\n{"execute":"query-name","id":2}\n{"execute":"query-kvm","id":3}\n');
  const replies = [await g.nextJson(4000), await g.nextJson(4000), await g.nextJson(4000)];
  t.same(replies.map((r) => r.id), [1, 2, 3], 'replies in request order');
  t.ok(performance.now() - t0 >= 1900, `the first reply came after ${(performance.now() - t0).toFixed(0)} ms`);
  await ctl.execute('inject-fault', { target: 'monitor', guest: 'g', action: 'disconnect' });
  g.send('{"execute":"cont","id":"c"}\n');
  await new Promise<void>((r) => g.socket.once('close', () => r()));
  t.notOk(g.partial.includes('"id":"c"') , 'no reply before the connection closed');
  const g2 = await connect(sevd.guestQmp('g'));
  t.same((await g2.execute('query-status')).return, { status: 'running', running: true }, 'the command ran (as QEMU would)');
  await g2.close();
  await ctl.execute('inject-fault', { target: 'monitor', action: 'delay', 'delay-ms': 300 });
  const t1 = performance.now();
  await ctl.execute('query-guests');
  t.ok(performance.now() - t1 >= 280, 'a fault without guest is for the control monitor');
  await ctl.close();
});

t.test('faults from the config are active from the first command', async (t) => {
  const sevd = await startSevd({ guests: [], faults: [{ target: 'firmware', command: 'PDH_CERT_EXPORT', status: 'HWERROR_PLATFORM' }] });
  t.teardown(() => sevd.stop());
  const ctl = await connect(sevd.controlPath);
  t.same((await ctl.execute('query-sev-capabilities')).error, { class: 'GenericError', desc: 'SEV: Failed to export PDH cert ret=-1 fw_err=19 (Hardware error)' });
  t.ok('return' in (await ctl.execute('query-sev-capabilities')), 'then used up');
  t.match((await ctl.execute('query-faults')).return, [{ target: 'firmware', command: 'PDH_CERT_EXPORT', status: 19, fired: 1, remaining: 0 }]);
  await ctl.close();
});

t.test('a bad fault in the config stops start-up with its JSON path', async (t) => {
  await t.rejects(startSevd({ guests: [], faults: [{ target: 'firmware', command: 'LAUNCH_START' }] }), /\$\.faults\[0\]: Parameter 'status' is missing/);
});

t.test('migration faults: cut, corrupt, stall — the source runs on intact and migrates again; the target discards', async (t) => {
  const { A, B, ca, cb } = await twoHosts(t);
  await ca.execute('guest-add', { name: 'vm', memory: '64M', 'sev-guest': { policy: 0 } });
  const ga = await monitor(A, 'vm');
  const agent = await RawClient.connect(A.guestQga('vm'));
  const pattern = Buffer.alloc(32 * 4096, 0x5c);
  await agent.execute('guest-memory-write', { gpa: 0x100000, data: pattern.toString('base64') });
  for (const [k, v] of Object.entries(await targetParams(cb))) await ga.execute('migrate-set-parameters', { [k]: v });
  await ga.execute('migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true }] });
  const targetContexts = async () => (await cb.execute('sev-platform-status')).return['guest-count'];

  for (const action of ['cut', 'corrupt', 'stall'] as const) {
    const port = await freePort();
    t.same((await cb.execute('guest-add', { name: 'vm', memory: '64M', incoming: `tcp:127.0.0.1:${port}`, 'sev-guest': { policy: 0 } })).return, {});
    const gb = await monitor(B, 'vm');
    await ca.execute('inject-fault', { target: 'migration', guest: 'vm', 'after-pages': 8, action });
    await ga.drain(30, 200);
    t.same((await ga.execute('migrate', { uri: `tcp:127.0.0.1:${port}` })).return, {}, `${action}: migrate starts`);
    let info;
    if (action === 'stall') {
      await new Promise((r) => setTimeout(r, 500));
      t.equal((await ga.execute('query-migrate')).return.status, 'active', 'stall: the migration hangs, still active');
      t.same((await ga.execute('migrate_cancel')).return, {});
      info = await waitStatus(ga, ['cancelled']);
    } else {
      info = await waitStatus(ga, ['failed']);
    }
    t.equal(info.status, action === 'stall' ? 'cancelled' : 'failed', `${action}: query-migrate says ${info.status}${info['error-desc'] ? ` (${info['error-desc']})` : ''}`);
    const events = (await ga.drain(50, 300)).map((l) => JSON.parse(l)).filter((m) => m.event === 'MIGRATION').map((m) => m.data.status);
    t.equal(events[events.length - 1], info.status, `${action}: the last MIGRATION event says ${info.status}`);
    t.same((await ga.execute('query-status')).return, { status: 'running', running: true }, `${action}: the source keeps running`);
    const back = Buffer.from((await agent.execute('guest-memory-read', { gpa: 0x100000, size: pattern.length })).return.data, 'base64');
    t.ok(back.equals(pattern), `${action}: its data intact`);
    // The target drops what it received (context, ASID, memory) when the stream breaks; a
    // stalled one waits until the management tool deletes it.
    if (action !== 'stall') {
      t.equal((await waitStatus(gb, ['failed'])).status, 'failed', `${action}: the target's migration failed`);
      t.equal(await targetContexts(), 0, `${action}: the target discarded the half-received guest`);
    }
    await gb.close();
    t.same((await cb.execute('guest-del', { name: 'vm' })).return, {});
    t.equal(await targetContexts(), 0, `${action}: no firmware context left on the target`);
  }
  t.match((await ca.execute('query-faults')).return, [{ action: 'cut', fired: 1 }, { action: 'corrupt', fired: 1 }, { action: 'stall', fired: 1 }]);

  // Firmware faults in a migration: SEND_START on the source, RECEIVE_UPDATE_DATA on the target.
  const p1 = await freePort();
  await cb.execute('guest-add', { name: 'vm', memory: '64M', incoming: `tcp:127.0.0.1:${p1}`, 'sev-guest': { policy: 0 } });
  await ca.execute('inject-fault', { target: 'firmware', command: 'SEND_START', status: 'INVALID_CERTIFICATE', guest: 'vm' });
  t.same((await ga.execute('migrate', { uri: `tcp:127.0.0.1:${p1}` })).return, {});
  t.equal((await waitStatus(ga, ['failed']))['error-desc'], 'SEV: SEND_START failed: fw_err=6 (Certificate is invalid)', 'SEND_START refused: the migration fails before any byte');
  t.same((await ga.execute('query-status')).return.status, 'running');
  await cb.execute('inject-fault', { target: 'firmware', command: 'RECEIVE_UPDATE_DATA', status: 'BAD_MEASUREMENT' });
  t.same((await ga.execute('migrate', { uri: `tcp:127.0.0.1:${p1}` })).return, {});
  t.equal((await waitStatus(ga, ['failed'])).status, 'failed', 'RECEIVE_UPDATE_DATA refused on the target: the source fails and runs on');
  const gb1 = await monitor(B, 'vm');
  t.match((await waitStatus(gb1, ['failed']))['error-desc'], /RECEIVE_UPDATE_DATA failed: fw_err=11 \(Bad measurement\)/, 'the target reports the firmware failure');
  t.equal(await targetContexts(), 0, 'and discarded the guest');
  await gb1.close();
  await cb.execute('guest-del', { name: 'vm' });

  // And it migrates fine afterwards.
  const port = await freePort();
  await cb.execute('guest-add', { name: 'vm', memory: '64M', incoming: `tcp:127.0.0.1:${port}`, 'sev-guest': { policy: 0 } });
  t.same((await ga.execute('migrate', { uri: `tcp:127.0.0.1:${port}` })).return, {});
  t.equal((await waitStatus(ga, ['completed', 'failed'])).status, 'completed', 'a later migration completes');
  const agentB = await RawClient.connect(B.guestQga('vm'));
  await waitStatus(await monitor(B, 'vm'), ['completed']);
  t.ok(Buffer.from((await agentB.execute('guest-memory-read', { gpa: 0x100000, size: pattern.length })).return.data, 'base64').equals(pattern), 'with the data');
  await Promise.all([agent.close(), agentB.close(), ga.close(), ca.close(), cb.close()]);
});
