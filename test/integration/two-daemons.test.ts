/**
 * Two daemons in one process (as an embedding program, or a test harness, would run them):
 * each keeps its own dispatchers, metrics and faults. Before, the guest dispatcher was
 * built once per process for the first guest's QEMU version, so `query-sev` on a 6.0.0
 * daemon started after a 9.2.0 one failed with an internal error, and every daemon added
 * its gauges to one process-global registry (`# TYPE sevd_guests` once per daemon).
 * A fault armed on one daemon fires on that daemon only.
 */
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Daemon } from '../../server/daemon/daemon.js';
import { validateConfig } from '../../server/config/config.js';
import { RawClient } from '../helpers/raw-client.js';

async function openDaemon(t: { teardown(fn: () => Promise<void>): void }, qemuVersion: string): Promise<Daemon> {
  const dir = mkdtempSync(join(tmpdir(), 'sevd-two-'));
  const config = validateConfig({
    runDir: join(dir, 'run'), stateDir: join(dir, 'state'), websocket: { port: 0 }, qemuVersion,
    guests: [{ name: 's', paused: true, 'sev-guest': { policy: 1 } }],
  }, 'test');
  const d = await Daemon.open(config, pino({ level: 'silent' }));
  await d.start();
  t.teardown(async () => {
    await d.shutdown('host-signal');
    rmSync(dir, { recursive: true, force: true });
  });
  return d;
}

type Reply = { return?: Record<string, unknown>; error?: { class: string; desc: string } };

async function execute(path: string, command: string, args?: unknown): Promise<Reply> {
  const c = await RawClient.connect(path);
  await c.negotiate();
  const r = await c.execute(command, args);
  await c.close();
  return r;
}

const guestQmp = (d: Daemon) => join(d.host.config.runDir, 'guests', 's.qmp');
const querySev = (d: Daemon) => execute(guestQmp(d), 'query-sev');

async function scrape(d: Daemon): Promise<string> {
  const res = await fetch(`${d.wsUrl!.replace(/^ws/, 'http')}/metrics`);
  return res.text();
}

const typeLines = (text: string) => text.split('\n').filter((l) => l.startsWith('# TYPE '));
const guestsGauge = (text: string) => text.split('\n').filter((l) => l.startsWith('sevd_guests{'));

t.test('two daemons with different QEMU versions in one process', async (t) => {
  const newer = await openDaemon(t, '9.2.0');
  const older = await openDaemon(t, '6.0.0');

  const a = await querySev(newer);
  t.equal(a.return?.['sev-type'], 'sev', '9.2.0: the sev-type union form');
  t.equal(a.return?.['policy'], 1);
  const b = await querySev(older);
  t.notOk(b.error, `6.0.0 answers without an error (${b.error?.desc ?? ''})`);
  t.notOk(b.return && 'sev-type' in b.return, '6.0.0: the plain struct');
  t.equal(b.return?.['policy'], 1);

  for (const [name, d] of [['9.2.0', newer], ['6.0.0', older]] as const) {
    const text = await scrape(d);
    const types = typeLines(text);
    t.same(types, [...new Set(types)], `${name}: every # TYPE line once`);
    t.same(guestsGauge(text), ['sevd_guests{run_state="prelaunch",sev_state="launch-secret"} 1'], `${name}: its own guest only`);
    t.match(text, /sevd_qmp_commands_total\{monitor="guest",command="query-sev",result="ok"\} 1\n/, `${name}: its own query-sev, once`);
  }

  // A fault armed on one daemon fires there only.
  t.ok((await execute(newer.controlPath, 'inject-fault', { target: 'firmware', command: 'PDH_CERT_EXPORT', status: 1 })).return, 'fault armed on 9.2.0');
  t.notOk((await execute(guestQmp(older), 'query-sev-capabilities')).error, '6.0.0: PDH_CERT_EXPORT unaffected');
  t.match((await execute(guestQmp(newer), 'query-sev-capabilities')).error?.desc, /fw_err=1 /, '9.2.0: the fault fired');
  t.match(await scrape(newer), /sevd_faults_fired_total\{target="firmware"\} 1\n/);
  t.notMatch(await scrape(older), /sevd_faults_fired_total\{/, 'nothing fired on 6.0.0');

  // Stopping one leaves the other answering, over QMP and /metrics.
  await newer.shutdown('host-signal');
  const again = await querySev(older);
  t.equal(again.return?.['policy'], 1, 'the 6.0.0 daemon still answers');
  t.match(await scrape(older), /command="query-sev",result="ok"\} 2\n/, 'and counts only its own commands');
});
