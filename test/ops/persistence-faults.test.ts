/**
 * SQLite-style I/O failure walk over every state-changing command: fail the 1st state I/O
 * call, then the 2nd, … until the command succeeds. After each failure the reply names the
 * errno, query-guests, sev-export-certs and the state files are exactly as before, no
 * temporary file is left, and a restarted daemon reads the same state. The daemon runs in
 * this process so the test can reach the I/O seam; everything else is real (sockets, QMP,
 * files, crypto).
 */
import t from 'tap';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Daemon } from '../../server/daemon/daemon.js';
import { validateConfig } from '../../server/config/config.js';
import { injectIoFaults, ioError, type IoOp } from '../../server/util/state-io.js';
import { decodeSevCert, encodeSevCert, Usage } from '../../abi/certs/sev-cert.js';
import { newP384Key } from '../../server/firmware/keys.js';
import { makeOcaCert, signSlot } from '../../abi/certs/issue.js';
import { RawClient } from '../helpers/raw-client.js';

const TEXT = { ENOSPC: 'No space left on device', EIO: 'Input/output error', EROFS: 'Read-only file system' } as const;

interface Host {
  daemon: Daemon;
  c: RawClient;
  stop(): Promise<void>;
}

async function boot(dir: string): Promise<Host> {
  const config = validateConfig({ runDir: join(dir, 'run'), stateDir: join(dir, 'state'), websocket: false, guests: [{ name: 'cfg', paused: true }] }, 'test');
  const daemon = await Daemon.open(config, pino({ level: 'silent' }), 'test');
  await daemon.start();
  const c = await RawClient.connect(daemon.controlPath);
  await c.negotiate();
  return {
    daemon, c,
    async stop() {
      await c.close();
      await daemon.shutdown('host-signal');
    },
  };
}

/** Everything a failed command must leave as it was. */
async function snapshot(h: Host, dir: string) {
  const state = join(dir, 'state');
  const files = Object.fromEntries(readdirSync(state).filter((f) => !['dumps', 'migration'].includes(f)).map((f) => [f, readFileSync(join(state, f), 'utf8')]));
  return {
    guests: (await h.c.execute('query-guests')).return,
    certs: (await h.c.execute('sev-export-certs')).return,
    owner: (await h.c.execute('sev-platform-status')).return.owner,
    snp: (await h.c.execute('sev-snp-platform-status')).return,
    files,
    sockets: readdirSync(join(dir, 'run', 'guests')).sort(),
  };
}

type Step = (h: Host) => Promise<{ args?: unknown; command: string }>;

const b64 = (s: string) => Buffer.from(s, 'base64');

const steps: Record<string, Step> = {
  'guest-add': async () => ({ command: 'guest-add', args: { name: 'added', memory: '64M', 'sev-guest': { policy: 1 } } }),
  'guest-del': async (h) => {
    await h.c.execute('guest-add', { name: 'victim', memory: '64M', paused: true });
    return { command: 'guest-del', args: { name: 'victim' } };
  },
  'sev-pdh-gen': async () => ({ command: 'sev-pdh-gen' }),
  'sev-pek-gen': async () => ({ command: 'sev-pek-gen' }),
  'sev-factory-reset': async () => ({ command: 'sev-factory-reset' }),
  'sev-snp-set-config': async () => ({ command: 'sev-snp-set-config', args: { 'mask-chip-key': true } }),
  'sev-snp-set-tcb': async (h) => {
    const cur = (await h.c.execute('sev-snp-platform-status')).return['current-tcb'];
    return { command: 'sev-snp-set-tcb', args: { ...cur, snp: cur.snp + 1 } };
  },
  'sev-snp-commit': async () => ({ command: 'sev-snp-commit' }),
  'sev-pek-cert-import': async (h) => {
    const csr = decodeSevCert(b64((await h.c.execute('sev-pek-csr')).return.data));
    const oca = newP384Key();
    const pek = encodeSevCert(signSlot(csr, 0, Usage.OCA, oca));
    return { command: 'sev-pek-cert-import', args: { 'pek-cert': pek.toString('base64'), 'oca-cert': makeOcaCert(oca, { major: 0, minor: 0 }).toString('base64') } };
  },
};

for (const code of ['ENOSPC', 'EIO'] as const) {
  t.test(`every persistence point of every state-changing command fails cleanly with ${code}`, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'sevd-iofault-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    let h = await boot(dir);
    const walked: string[] = [];
    for (const [name, prepare] of Object.entries(steps)) {
      for (let k = 1; ; k++) {
        const { command, args } = await prepare(h);
        const before = await snapshot(h, dir);
        let calls = 0;
        let failedOp: IoOp | undefined;
        injectIoFaults((op, path) => {
          if (++calls !== k) return undefined;
          failedOp = op;
          return ioError(code, op, path);
        });
        const r = await h.c.execute(command, args);
        injectIoFaults(null);
        if (r.return !== undefined) {
          t.ok(k > 1, `${name}: succeeds once no call fails (after ${k - 1} failure points)`);
          walked.push(`${name}:${k - 1}`);
          // Undo what the command added so the next command starts from a known state.
          if (name === 'guest-add') await h.c.execute('guest-del', { name: 'added' });
          break;
        }
        t.equal(r.error.class, 'GenericError');
        t.match(r.error.desc, new RegExp(`^Could not write '.*': ${TEXT[code]}$`), `${name}, ${failedOp} (call ${k}) fails: ${r.error.desc}`);
        t.same(await snapshot(h, dir), before, `${name}, ${failedOp} (call ${k}): state, replies and files unchanged, no temporary file`);
        await h.stop();
        h = await boot(dir);
        t.same(await snapshot(h, dir), before, `${name}, ${failedOp} (call ${k}): a restart reads the same state`);
        if (name === 'guest-del') await h.c.execute('guest-del', { name: 'victim' });
        if (k > 20) throw new Error(`${name} never succeeded`);
      }
    }
    t.comment(`persistence points walked (command:failure points): ${walked.join(' ')}`);
    await h.stop();
  });
}

t.test('a read-only state directory: start-up refuses with a clear error; while running, changes fail and queries work', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sevd-erofs-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  let h = await boot(dir);
  const before = await snapshot(h, dir);
  injectIoFaults((op, path) => (op === 'read' ? undefined : ioError('EROFS', op, path)));
  for (const [command, args] of [['guest-add', { name: 'x' }], ['sev-pdh-gen', undefined], ['sev-pek-gen', undefined], ['sev-factory-reset', undefined]] as const) {
    const r = await h.c.execute(command, args);
    t.match(r.error?.desc, /^Could not write '.*': Read-only file system$/, `${command} fails with the errno text`);
  }
  t.same(await snapshot(h, dir), before, 'queries keep working and nothing changed');
  await h.stop();
  await t.rejects(boot(dir), /state directory .* does not take writes: Read-only file system/, 'start-up on a read-only state directory is refused');
  injectIoFaults(null);
  h = await boot(dir);
  t.same(await snapshot(h, dir), before, 'once writable again, the same state');
  await h.stop();
  // A real read-only directory where the test is not root (root bypasses mode bits).
  if (process.getuid!() !== 0) {
    chmodSync(join(dir, 'state'), 0o500);
    await t.rejects(boot(dir), /does not take writes: Permission denied/);
    chmodSync(join(dir, 'state'), 0o700);
  }
});
