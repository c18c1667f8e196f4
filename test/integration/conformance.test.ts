/**
 * Protocol conformance: the real QEMU 7.2 from Debian and sevd side by side receive the
 * same inputs and must give the same replies (class, desc, id, return values; events
 * compared without their timestamps).
 */
import t from 'tap';
import { RawClient } from '../helpers/raw-client.js';
import { startSevd } from '../helpers/sevd-process.js';
import { qemuAvailable, startQemu } from '../helpers/qemu.js';
import { commandCases, negotiationCases, type Case } from './conformance-cases.js';

function normalize(line: string): unknown {
  const m = JSON.parse(line);
  if (m.event) delete m.timestamp;
  return m;
}

async function play(client: RawClient, cs: Case): Promise<string[]> {
  for (const chunk of cs.chunks) {
    client.send(chunk);
    await new Promise((r) => setTimeout(r, 15));
  }
  // Every case gets at least one line: wait for it (a loaded machine can keep QEMU busy for
  // longer than the quiet window), then collect until the connection has been quiet.
  const first = await client.next(8000).catch(() => undefined);
  const rest = await client.drain(150, 8000);
  return first === undefined ? rest : [first, ...rest];
}

t.test('sevd answers like QEMU 7.2', { skip: qemuAvailable() ? false : 'qemu-system-x86_64 is not installed' }, async (t) => {
  const qemu = await startQemu();
  const sevd = await startSevd({ qemuVersion: '7.2.0', websocket: false, guests: [{ name: 'vm', paused: true }] });
  t.teardown(async () => {
    await qemu.stop();
    await sevd.stop();
  });
  const a = await RawClient.connect(qemu.qmpPath);
  const b = await RawClient.connect(sevd.guestQmp('vm'));
  const ga = JSON.parse(await a.next());
  const gb = JSON.parse(await b.next());
  t.same(Object.keys(gb.QMP).sort(), Object.keys(ga.QMP).sort(), 'greeting shape');
  t.same(gb.QMP.capabilities, ga.QMP.capabilities, 'greeting capabilities');
  t.same(gb.QMP.version.qemu, { major: 7, minor: 2, micro: 0 }, 'greeting announces qemuVersion');

  let identical = 0;
  let total = 0;
  const cases = [...negotiationCases, ...commandCases];
  for (const cs of cases) {
    const [ra, rb] = await Promise.all([play(a, cs), play(b, cs)]);
    t.ok(ra.length > 0, `${cs.name}: QEMU replied`);
    t.same(rb.map(normalize), ra.map(normalize), cs.name);
    // Beyond parsed equality: every non-event line is byte-identical (member order, escapes, numbers).
    for (let i = 0; i < ra.length; i++) {
      if (ra[i]!.includes('"timestamp"')) continue;
      total++;
      if (ra[i] === rb[i]) identical++;
      else t.equal(rb[i], ra[i], `${cs.name}: line ${i} byte-identical`);
    }
  }
  t.ok(cases.length >= 60, `${cases.length} inputs compared`);
  t.comment(`${identical}/${total} reply lines byte-identical to QEMU's`);
  await a.close();
  await b.close();
});
