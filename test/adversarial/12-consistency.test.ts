/**
 * Hole 12, consistency. (a) `sev-snp-platform-status` said `guest-count: 0` whatever ran:
 * SNP_PLATFORM_STATUS's GUEST_COUNT is the number of valid SNP guests. (b) The operator view
 * opened with a read-only token failed on load: `sev-platform-status` and its kin change
 * nothing but were refused because their names do not start with `query-`. Commands are now
 * classified by effect in the schema; state-changing ones stay refused.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { QmpClient, QMPError } from '../../clients/qmp/client.js';
import { startSevd, type SevdProcess } from '../helpers/sevd-process.js';
import { control } from '../helpers/migration.js';
import { refusal } from '../helpers/qmp-outcome.js';

const FULL = 'full-token-0123456789';
const RO = 'read-only-token-0123456789';

async function ws(sevd: SevdProcess, path: string, token: string) {
  return QmpClient.connect(`ws://127.0.0.1:${sevd.wsPort}${path}`, { headers: { Authorization: `Bearer ${token}` }, timeoutMs: 5000 });
}

// What web/app.js sends: on load and on every refresh (control monitor, then each guest's), and on clicks.
const ON_LOAD_CONTROL = ['sev-platform-status', 'query-sev-capabilities', 'query-version', 'query-asids', 'sev-snp-platform-status', 'query-guests', 'query-guest-memory'];
const ON_LOAD_GUEST = ['query-sev', 'query-cpus-fast', 'query-migrate', 'query-sev-launch-measure'];
const ON_CLICK = ['guest-add', 'guest-del', 'stop', 'cont', 'system_reset', 'human-monitor-command', 'guest-memory-read'];

t.test('the operator view\'s commands are the ones this test knows', async (t) => {
  const app = readFileSync('web/app.js', 'utf8');
  const sent = new Set([...app.matchAll(/execute\('([\w-]+)'/g)].map((m) => m[1]));
  const buttons = [...app.matchAll(/\['([\w-]+)', '[\w ]+'\]/g)].map((m) => m[1]);
  for (const b of buttons) sent.add(b);
  t.same([...sent].sort(), ['qmp_capabilities', ...ON_LOAD_CONTROL, ...ON_LOAD_GUEST, ...ON_CLICK].sort(), 'every command web/app.js sends is classified here');
});

t.test('a read-only token runs what the operator view sends on load; state changes are refused', async (t) => {
  const sevd = await startSevd({
    websocket: { port: 0, tokens: [{ token: FULL, access: 'full' }, { token: RO, access: 'read-only' }] },
    platform: { generation: 'milan' },
    guests: [{ name: 'g', memory: '16M', paused: true, 'sev-guest': { policy: 1 } }],
  });
  t.teardown(() => sevd.stop());
  const rc = await ws(sevd, '/qmp', RO);
  const rg = await ws(sevd, '/qmp/g', RO);
  for (const cmd of ON_LOAD_CONTROL) {
    const r = await rc.execute(cmd, cmd === 'query-guest-memory' ? { name: 'g' } : undefined).catch((e: QMPError) => e);
    t.notOk(r instanceof QMPError, `read-only, control: ${cmd} works${r instanceof QMPError ? ` (${r.desc})` : ''}`);
  }
  for (const cmd of ON_LOAD_GUEST) {
    const r = await rg.execute(cmd).catch((e: QMPError) => e);
    t.notOk(r instanceof QMPError, `read-only, guest: ${cmd} works${r instanceof QMPError ? ` (${r.desc})` : ''}`);
  }
  t.ok((await rc.execute('sev-export-certs') as any).pdh, 'read-only: sev-export-certs (public certificates) works');
  t.match(await rg.execute('human-monitor-command', { 'command-line': 'info sev' }), /SEV/, 'read-only: HMP info works as before');

  const before = {
    status: await rc.execute('sev-platform-status'),
    snp: await rc.execute('sev-snp-platform-status'),
    guests: await rc.execute('query-guests'),
  };
  for (const [c, cmd, args] of [
    [rc, 'guest-add', { name: 'ro' }], [rc, 'guest-del', { name: 'g' }], [rg, 'stop', undefined], [rg, 'cont', undefined],
    [rg, 'system_reset', undefined], [rg, 'human-monitor-command', { 'command-line': 'xp /1x 0' }],
    [rc, 'sev-pek-gen', undefined], [rc, 'sev-pdh-gen', undefined], [rc, 'sev-factory-reset', undefined],
    [rc, 'sev-snp-set-config', { 'mask-chip-id': true }], [rc, 'sev-snp-commit', undefined],
    [rc, 'sev-snp-set-tcb', { bootloader: 9, tee: 0, snp: 20, microcode: 200 }],
    [rc, 'inject-fault', { target: 'firmware', command: 'PEK_GEN', status: 'INVALID_PARAM' }], [rc, 'clear-faults', undefined],
    [rg, 'migrate-set-parameters', { 'downtime-limit': 1 }], [rg, 'migrate_cancel', undefined],
  ] as const) {
    t.equal(await refusal((c as QmpClient).execute(cmd, args as Record<string, unknown> | undefined)), `Command '${cmd}' is not allowed with a read-only token`, `read-only: ${cmd} refused`);
  }
  t.same(await rc.execute('sev-platform-status'), before.status, 'nothing changed: platform');
  t.same(await rc.execute('sev-snp-platform-status'), before.snp, 'SNP platform');
  t.same(await rc.execute('query-guests'), before.guests, 'guests');
  t.same(await rc.execute('query-faults'), [], 'no fault injected');
  await Promise.all([rc.close(), rg.close()]);
});

t.test('SNP guest-count counts the SNP guests', async (t) => {
  const sevd = await startSevd({ guests: [], platform: { generation: 'milan' } });
  t.teardown(() => sevd.stop());
  const ctl = await control(sevd);
  const count = async () => (await ctl.execute('sev-snp-platform-status')).return['guest-count'];
  const add = async (name: string, sev: Record<string, unknown>) => t.same((await ctl.execute('guest-add', { name, memory: '64M', ...sev })).return, {}, `guest-add ${name}`);
  t.equal(await count(), 0, 'no guest: 0');
  await add('a', { 'sev-snp-guest': {} });
  t.equal(await count(), 1, 'one SNP guest: 1');
  await add('b', { 'sev-snp-guest': {} });
  t.equal(await count(), 2, 'two: 2');
  await add('legacy', { 'sev-guest': { policy: 1 } });
  await add('plain', {});
  t.equal(await count(), 2, 'an SEV guest and a plain one are no SNP guests');
  t.same((await ctl.execute('guest-del', { name: 'a' })).return, {}, 'guest-del a');
  t.equal(await count(), 1, 'one deleted: 1');
  t.equal((await ctl.execute('sev-platform-status')).return['guest-count'], 2, 'PLATFORM_STATUS still counts every firmware context');
  await ctl.close();
});
