/** Version-dependent SEV replies, HMP `info sev`, and the guest agent's C-bit view. */
import t from 'tap';
import { RawClient } from '../helpers/raw-client.js';
import { startSevd } from '../helpers/sevd-process.js';

t.test('QEMU 7.2 shapes and texts', async (t) => {
  const sevd = await startSevd({ qemuVersion: '7.2.0', guests: [{ name: 's', paused: true, 'sev-guest': { policy: 3 } }, { name: 'p', paused: true }] });
  t.teardown(() => sevd.stop());
  const g = await RawClient.connect(sevd.guestQmp('s'));
  await g.negotiate();
  const line = (await g.execute('query-sev', undefined, 'x'));
  t.same(Object.keys(line.return).sort(), ['api-major', 'api-minor', 'build-id', 'enabled', 'handle', 'policy', 'state'], 'plain struct before 9.1');
  t.same(line.return, { enabled: true, 'api-major': 1, 'api-minor': 55, 'build-id': 21, policy: 3, state: 'launch-secret', handle: line.return.handle });
  t.equal((await g.execute('human-monitor-command', { 'command-line': 'info sev' })).return,
    `handle: ${line.return.handle}\r\nstate: launch-secret\r\nbuild: 21\r\napi version: 1.55\r\ndebug: off\r\nkey-sharing: off\r\n`);
  const caps = (await g.execute('query-sev-capabilities')).return;
  t.ok('cpu0-id' in caps, 'cpu0-id from 7.1');
  const p = await RawClient.connect(sevd.guestQmp('p'));
  await p.negotiate();
  t.same((await p.execute('query-sev')).return, { enabled: false, 'api-major': 0, 'api-minor': 0, 'build-id': 0, policy: 0, state: 'uninit', handle: 0 });
  t.equal((await p.execute('human-monitor-command', { 'command-line': 'info sev' })).return, 'SEV is not enabled\r\n');
  t.same((await p.execute('query-sev-launch-measure')).error.desc, 'SEV launch measurement is not available');
  t.same((await p.execute('sev-inject-launch-secret', { 'packet-header': 'AAAA', secret: 'AAAA' })).error.desc, 'SEV not enabled for guest');
  t.same((await p.execute('query-sev-attestation-report', { mnonce: 'AAAAAAAAAAAAAAAAAAAAAA==' })).error.desc, 'SEV is not enabled');
  await Promise.all([g.close(), p.close()]);
});

t.test('QEMU 6.0: older texts, no attestation command', async (t) => {
  const sevd = await startSevd({ qemuVersion: '6.0.0', guests: [{ name: 'p', paused: true }] });
  t.teardown(() => sevd.stop());
  const p = await RawClient.connect(sevd.guestQmp('p'));
  await p.negotiate();
  t.same((await p.execute('query-sev-launch-measure')).error.desc, 'Measurement is not available');
  t.same((await p.execute('query-sev-attestation-report', { mnonce: 'AAAA' })).error, { class: 'CommandNotFound', desc: 'The command query-sev-attestation-report has not been found' });
  t.notOk('cpu0-id' in (await p.execute('query-sev-capabilities')).return, 'no cpu0-id before 7.1');
  await p.close();
});

t.test('guest agent: shared pages are plaintext to the host, private pages are not', async (t) => {
  const sevd = await startSevd({ guests: [{ name: 's', 'sev-guest': { policy: 1 } }] });
  t.teardown(() => sevd.stop());
  const a = await RawClient.connect(sevd.guestQga('s'));
  const g = await RawClient.connect(sevd.guestQmp('s'));
  await g.negotiate();
  t.equal((await g.execute('query-sev')).return.state, 'running', 'not paused: LAUNCH_FINISH at start');
  const text = Buffer.from('page content visible to whom?');
  t.same((await a.execute('guest-set-memory-attributes', { gpa: 0x100000, size: 4096, private: false })).return, {});
  await a.execute('guest-memory-write', { gpa: 0x100000, data: text.toString('base64') });
  await a.execute('guest-memory-write', { gpa: 0x101000, data: text.toString('base64') });
  const xp = async (addr: number) => (await g.execute('human-monitor-command', { 'command-line': `xp /4xb 0x${addr.toString(16)}` })).return;
  t.match(await xp(0x100000), /0x70 0x61 0x67 0x65/, 'shared page: the host reads "page"');
  t.notMatch(await xp(0x101000), /0x70 0x61 0x67 0x65/, 'private page: ciphertext');
  t.equal(Buffer.from((await a.execute('guest-memory-read', { gpa: 0x101000, size: text.length })).return.data, 'base64').toString(), text.toString());
  t.same((await a.execute('guest-set-memory-attributes', { gpa: 0x100001, size: 4096, private: true })).error.class, 'GenericError', 'must be page aligned');
  const list = (await (async () => {
    const c = await RawClient.connect(sevd.controlPath);
    await c.negotiate();
    const r = (await c.execute('query-guests')).return;
    await c.close();
    return r;
  })());
  t.equal(list[0]['sev-state'], 'running');
  await Promise.all([a.close(), g.close()]);
});

t.test('measured direct boot: kernel-hashes table (T5c through guest-add)', async (t) => {
  const { mkdtempSync, writeFileSync } = await import('node:fs');
  const { join, resolve } = await import('node:path');
  const { tmpdir } = await import('node:os');
  const dir = mkdtempSync(join(tmpdir(), 'sevd-kh-'));
  writeFileSync(join(dir, 'vmlinuz'), 'fake vmlinuz\n');
  writeFileSync(join(dir, 'initrd'), 'fake initrd\n');
  const sevd = await startSevd({ guests: [] });
  t.teardown(() => sevd.stop());
  const c = await RawClient.connect(sevd.controlPath);
  await c.negotiate();
  const spec = {
    name: 'kh', paused: true, firmware: resolve('test/fixtures/measurement/OVMF.amdsev.fd_trimmed'),
    kernel: join(dir, 'vmlinuz'), initrd: join(dir, 'initrd'), append: 'foo bar baz fake kernel=cmdline',
    'sev-guest': { policy: 1, 'kernel-hashes': true },
  };
  t.same((await c.execute('guest-add', spec)).return, {});
  const g = await RawClient.connect(sevd.guestQmp('kh'));
  await g.negotiate();
  const report = Buffer.from((await g.execute('query-sev-attestation-report', { mnonce: 'AAAAAAAAAAAAAAAAAAAAAA==' })).return.data, 'base64');
  t.equal(report.subarray(16, 48).toString('hex'), '4b47fec6f851487c33714c8a00a832a1b705ad0a7cac4a647388eccfa9f0c570', 'LD = SHA-256(firmware ‖ padded hashes table), as T5c');
  const debian = await c.execute('guest-add', { ...spec, name: 'kh2', firmware: '/usr/share/OVMF/OVMF_CODE.fd' });
  t.equal(debian.error?.desc, 'SEV: guest firmware hashes table area is invalid (base=0x0 size=0x0)', 'Debian OVMF has no hashes area');
  const plain = await c.execute('guest-add', { ...spec, name: 'kh3', firmware: null });
  t.same(plain.return, {}, 'the built-in image has a hashes area');
  await Promise.all([g.close(), c.close()]);
});
