/**
 * Issue 21, hole 4: an incoming SEV guest fed only the stream's final record (`SEVDMIG\0`,
 * version, device-state record) acknowledged it and went `running` with `query-sev` state
 * `uninit` and no ASID: the host saw its writes in plaintext. Now such a stream, and every
 * other one that does not go through RECEIVE_START … RECEIVE_FINISH, fails the migration.
 */
import t, { type Test } from 'tap';
import { freePort } from '../helpers/free-port.js';
import { monitor, targetParams, twoHosts, waitStatus } from '../helpers/migration.js';
import { RawClient } from '../helpers/raw-client.js';
import {
  connectPeer, deviceRecord, forgedReceiveStart, ramSizeRecord, send, streamHeader,
} from '../helpers/hostile-peer.js';

const RAM = 64 * 1024 * 1024;
const ACK = 0x06;

/** Sends `parts` to an incoming guest, half-closes, and returns what the target answered once it closed. */
async function feed(port: number, parts: Buffer[]): Promise<Buffer> {
  const sock = await connectPeer(port);
  const got: Buffer[] = [];
  sock.on('data', (d: Buffer) => got.push(d));
  const closed = new Promise<void>((r) => sock.once('close', () => r()));
  for (const p of parts) await send(sock, p);
  sock.end();
  await Promise.race([closed, new Promise((r) => setTimeout(r, 5000))]);
  sock.destroy();
  return Buffer.concat(got);
}

async function incomingGuest(cb: RawClient, B: Parameters<typeof monitor>[0], name: string, sev: Record<string, unknown> | null) {
  const port = await freePort();
  const args: Record<string, unknown> = { name, memory: '64M', incoming: `tcp:127.0.0.1:${port}` };
  if (sev) args['sev-guest'] = sev;
  const r = await cb.execute('guest-add', args);
  if (!('return' in r)) throw new Error(JSON.stringify(r));
  return { port, g: await monitor(B, name) };
}

/** The guest was discarded: still waiting (never ran), no SEV context, no ASID. */
async function assertDiscarded(t: Test, cb: RawClient, g: RawClient, name: string, sev = true) {
  await new Promise((r) => setTimeout(r, 150));
  t.same((await g.execute('query-status')).return, { status: 'inmigrate', running: false }, `${name}: never runs`);
  if (sev) t.equal((await g.execute('query-sev')).return.state, 'uninit', `${name}: no SEV context`);
  const asids = (await cb.execute('query-asids')).return['in-use'] as { name: string }[];
  t.notOk(asids.some((a) => a.name === name), `${name}: no ASID`);
}

t.test('the forged end-of-stream record: refused, the guest never runs, no ASID or context', async (t) => {
  const { B, cb } = await twoHosts(t);
  const { port, g } = await incomingGuest(cb, B, 'vm', { policy: 1 });
  const answer = await feed(port, [streamHeader(), deviceRecord(true)]);
  t.notOk(answer.includes(ACK), 'no acknowledgement');
  const info = await waitStatus(g, ['failed', 'completed']);
  t.equal(info.status, 'failed');
  t.equal(info['error-desc'], 'load of migration failed: Invalid argument');
  await assertDiscarded(t, cb, g, 'vm');
  t.same((await cb.execute('sev-platform-status')).return['guest-count'], 0, 'no firmware context');
  t.same((await g.execute('cont')).return, {}, 'cont on an inmigrate guest only sets autostart');
  t.same((await g.execute('query-status')).return, { status: 'inmigrate', running: false });
  t.equal((await g.execute('migrate-incoming', { uri: 'tcp:127.0.0.1:1' })).error.desc, 'The incoming migration has already been started');
  await g.close();
});

t.test('every stream that skips RECEIVE_START … RECEIVE_FINISH fails; a real migration still works', async (t) => {
  const { A, B, ca, cb } = await twoHosts(t);
  const pdhB = (await cb.execute('query-sev-capabilities')).return.pdh as string;
  const cases: { name: string; sev: Record<string, unknown> | null; parts: () => Buffer[]; desc: RegExp; fault?: true }[] = [
    { name: 'no-start', sev: { policy: 1 }, parts: () => [streamHeader(), ramSizeRecord(RAM, true), deviceRecord()], desc: /^SEV: end of the stream without RECEIVE_START/ },
    { name: 'plain-stream', sev: { policy: 1 }, parts: () => [streamHeader(), ramSizeRecord(RAM, false), deviceRecord()], desc: /stream carries a guest without SEV/ },
    { name: 'sev-to-plain', sev: null, parts: () => [streamHeader(), ramSizeRecord(RAM, true), forgedReceiveStart(pdhB, 1), deviceRecord()], desc: /has no sev-guest object/ },
    { name: 'ends-early', sev: { policy: 1 }, parts: () => [streamHeader(), ramSizeRecord(RAM, true), forgedReceiveStart(pdhB, 1)], desc: /^load of migration failed: Input\/output error$/ },
    { name: 'es', sev: { policy: 5 }, parts: () => [streamHeader(), ramSizeRecord(RAM, true), forgedReceiveStart(pdhB, 5), deviceRecord()], desc: /^SEV: Migration is not implemented$/ },
    { name: 'es-policy', sev: { policy: 1 }, parts: () => [streamHeader(), ramSizeRecord(RAM, true), forgedReceiveStart(pdhB, 5), deviceRecord()], desc: /^SEV: Migration is not implemented$/ },
    { name: 'finish-refused', sev: { policy: 1 }, parts: () => [streamHeader(), ramSizeRecord(RAM, true), forgedReceiveStart(pdhB, 1), deviceRecord()], desc: /RECEIVE_FINISH failed/, fault: true },
  ];
  for (const c of cases) {
    const { port, g } = await incomingGuest(cb, B, c.name, c.sev);
    if (c.fault) await cb.execute('inject-fault', { target: 'firmware', command: 'RECEIVE_FINISH', status: 2, guest: c.name, count: 1 });
    const answer = await feed(port, c.parts());
    t.notOk(answer.includes(ACK), `${c.name}: no acknowledgement`);
    const info = await waitStatus(g, ['failed', 'completed']);
    t.equal(info.status, 'failed', c.name);
    t.match(info['error-desc'], c.desc, `${c.name}: ${info['error-desc']}`);
    await assertDiscarded(t, cb, g, c.name, c.sev !== null);
    await g.close();
  }
  t.same((await cb.execute('sev-platform-status')).return['guest-count'], 0, 'no firmware context left by any of them');

  // The check is RECEIVE_START … RECEIVE_FINISH, nothing else: a complete SEV stream (anyone
  // can build one for the target's public PDH) loads, encrypted under a new ASID.
  const ok = await incomingGuest(cb, B, 'complete', { policy: 1 });
  t.ok((await feed(ok.port, [streamHeader(), ramSizeRecord(RAM, true), forgedReceiveStart(pdhB, 1), deviceRecord()])).includes(ACK), 'a complete stream is acknowledged');
  t.equal((await waitStatus(ok.g, ['failed', 'completed'])).status, 'completed');
  t.match((await ok.g.execute('query-sev')).return, { state: 'running', policy: 1 });
  t.ok(((await cb.execute('query-asids')).return['in-use'] as { name: string }[]).some((a) => a.name === 'complete'), 'it has an ASID');
  await ok.g.close();

  // A source that goes on writing after the acknowledgement, never reading or hanging up:
  // the target drops what follows and cuts the connection off (it used to stop reading and
  // hold the connection, and the writer, for ever).
  const chatty = await incomingGuest(cb, B, 'chatty', { policy: 1 });
  const sock = await connectPeer(chatty.port);
  const closed = new Promise<number>((r) => sock.once('close', () => r(Date.now())));
  for (const p of [streamHeader(), ramSizeRecord(RAM, true), forgedReceiveStart(pdhB, 1), deviceRecord()]) await send(sock, p);
  const t0 = Date.now();
  const junk = Buffer.alloc(64 * 1024, 0x5a);
  while (Date.now() - t0 < 6000 && (await send(sock, junk, t0 + 6000)));
  const at = await Promise.race([closed, new Promise<number>((r) => setTimeout(() => r(-1), 1000))]);
  sock.destroy();
  t.ok(at > 0 && at - t0 < 5000, `a source still writing after the ACK is cut off (after ${at > 0 ? at - t0 : 'never'} ms)`);
  t.equal((await waitStatus(chatty.g, ['failed', 'completed'])).status, 'completed', 'its migration completed all the same');
  await chatty.g.close();

  // And a real migration between the two daemons.
  await ca.execute('guest-add', { name: 'real', memory: '64M', 'sev-guest': { policy: 0 } });
  const ga = await monitor(A, 'real');
  const agent = await RawClient.connect(A.guestQga('real'));
  await agent.execute('guest-memory-write', { gpa: 0x200000, data: Buffer.from('still here').toString('base64') });
  const dst = await incomingGuest(cb, B, 'real', { policy: 0 });
  for (const [k, v] of Object.entries(await targetParams(cb))) await ga.execute('migrate-set-parameters', { [k]: v });
  t.same((await ga.execute('migrate', { uri: `tcp:127.0.0.1:${dst.port}` })).return, {});
  t.equal((await waitStatus(ga, ['completed', 'failed'])).status, 'completed', 'the real migration completes');
  t.equal((await waitStatus(dst.g, ['completed'])).status, 'completed');
  await new Promise((r) => setTimeout(r, 100));
  t.same((await dst.g.execute('query-status')).return, { status: 'running', running: true });
  t.equal((await dst.g.execute('query-sev')).return.state, 'running');
  const agentB = await RawClient.connect(B.guestQga('real'));
  t.equal(Buffer.from((await agentB.execute('guest-memory-read', { gpa: 0x200000, size: 10 })).return.data, 'base64').toString(), 'still here');
  await Promise.all([ga.close(), dst.g.close(), agent.close(), agentB.close(), ca.close(), cb.close()]);
});
