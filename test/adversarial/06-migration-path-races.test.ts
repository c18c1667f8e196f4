/**
 * Hole 6's remainder (issue 21): `unix:` and `file:` migration names were checked by name
 * and then bound, unlinked or opened by name again, so flipping `migration/sub` between a
 * directory and a symlink to a directory outside let a WebSocket client create (and
 * unlink) sockets outside the migration directories. Replayed over a WebSocket with a full
 * token: `guest-add` with `incoming: unix:sub/…` while `sub` flips creates no socket
 * outside and removes nothing there; refusals are `not allowed`; and bind and open failures
 * answer QEMU's texts with the name the client gave.
 */
import t from 'tap';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QmpClient } from '../../clients/qmp/client.js';
import { startSevd } from '../helpers/sevd-process.js';
import { hammer, NO_SWAPPER, swapper } from '../helpers/dir-swapper.js';
import { outcome } from '../helpers/qmp-outcome.js';

const FULL = 'full-token-migration-paths';

t.test('incoming unix: sockets while migration/sub flips: nothing created or removed outside', { skip: NO_SWAPPER }, async (t) => {
  const outside = mkdtempSync(join(tmpdir(), 'sevd-adv06m-'));
  t.teardown(() => rmSync(outside, { recursive: true, force: true }));
  // A file outside with the name a socket would take: an unlink through the link would remove it.
  for (let i = 0; i < 2000; i++) writeFileSync(join(outside, `m${i}.sock`), 'keep');
  const sevd = await startSevd({ websocket: { port: 0, tokens: [{ token: FULL, access: 'full' }] }, guests: [] });
  t.teardown(() => sevd.stop());
  const sub = join(sevd.stateDir, 'migration', 'sub');
  mkdirSync(sub);
  const ctl = await QmpClient.connect(`ws://127.0.0.1:${sevd.wsPort}/qmp`, { headers: { Authorization: `Bearer ${FULL}` }, timeoutMs: 10000 });
  t.teardown(() => ctl.close());
  const flips = swapper(sub, outside, 2000);
  const results = await hammer(flips, 3, (i) => outcome(ctl.execute('guest-add', { name: `m${i}`, memory: '16M', incoming: `unix:sub/m${i}.sock` })));
  t.ok((await flips) > 0, 'the swapper flipped');
  const there = readdirSync(outside);
  t.equal(there.length, 2000, `nothing created or removed outside (${results.length} guest-adds)`);
  t.ok(there.every((n) => /^m\d+\.sock$/.test(n)), 'only the planted files');
  // Refused at guest-add (the name as given) or when the guest binds (the name as checked then).
  const odd = results.map((r, i) => [r, i] as const).filter(([r, i]) => r !== undefined && !new RegExp(`^Path '(.*/)?sub/m${i}\\.sock' is not allowed for migration$`).test(r));
  t.same(odd.slice(0, 3), [], 'every refusal is the confinement error');
  const added = results.filter((r) => r === undefined).length;
  t.equal(readdirSync(sub).filter((n) => n.endsWith('.sock')).length, added, `every accepted guest listens inside (${added} of ${results.length})`);
});

t.test('bind and open failures: QEMU texts with the client\'s name, no internal error', async (t) => {
  const sevd = await startSevd({ websocket: { port: 0, tokens: [{ token: FULL, access: 'full' }] }, guests: [{ name: 'd', memory: '16M', incoming: 'defer' }] });
  t.teardown(() => sevd.stop());
  const g = await QmpClient.connect(`ws://127.0.0.1:${sevd.wsPort}/qmp/d`, { headers: { Authorization: `Bearer ${FULL}` } });
  t.teardown(() => g.close());
  t.equal(await outcome(g.execute('migrate-incoming', { uri: 'file:nosuch.stream' })), `Unable to open ${join(sevd.stateDir, 'migration', 'nosuch.stream')}: No such file or directory`, 'file: that does not exist');
  const u = await QmpClient.connect(sevd.controlPath);
  t.teardown(() => u.close());
  t.same(await u.execute('guest-add', { name: 'e', memory: '16M', incoming: 'defer' }), {});
  const ue = await QmpClient.connect(sevd.guestQmp('e'));
  t.teardown(() => ue.close());
  // (libuv reports EACCES where the kernel said ENOENT: the errno text is node's, the form QEMU's.)
  t.match(await outcome(ue.execute('migrate-incoming', { uri: 'unix:/nonexistent-dir/x.sock' })), /^Failed to bind socket to \/nonexistent-dir\/x\.sock: \S/, 'unix: in a directory that does not exist (unconfined Unix client)');
});
