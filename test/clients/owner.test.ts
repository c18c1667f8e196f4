/** The guest-owner toolkit: public vectors T4–T7 and AMD's real chains, through the CLI and the library. */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { buildMeasurement, buildSecret, launchDigest, verifyPlatform, chainFromDir } from '../../clients/owner/owner.js';
import { startSevd } from '../helpers/sevd-process.js';
import { RawClient } from '../helpers/raw-client.js';

const CLI = resolve('dist/clients/owner/cli.js');
// Real chips' certificates (public data; provenance in test/fixtures/README.md).
const FIXTURES = resolve('test/fixtures');
const F = 'test/fixtures';
const owner = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
const tmp = mkdtempSync(join(tmpdir(), 'sev-owner-'));
const file = (name: string, data: Buffer | string) => {
  const p = join(tmp, name);
  writeFileSync(p, data);
  return p;
};

t.test('verify: the real Naples and Rome chains against AMD\'s roots by generation', async (t) => {
  for (const gen of ['naples', 'rome']) {
    const dir = join(tmp, gen);
    spawnSync('mkdir', ['-p', dir]);
    for (const n of ['cek', 'oca', 'pek', 'pdh']) writeFileSync(join(dir, `${n}.cert`), readFileSync(join(FIXTURES, 'chips', gen, `${n}.cert`)));
    const r = owner('verify', '--dir', dir, '--generation', gen);
    t.equal(r.status, 0, `${gen}: ${r.stdout.trim()}`);
    const wrong = owner('verify', '--dir', dir, '--generation', gen === 'naples' ? 'rome' : 'naples');
    t.equal(wrong.status, 1, `${gen} under the wrong generation: ${wrong.stdout.trim()}`);
  }
  t.notOk(verifyPlatform(chainFromDir(join(tmp, 'rome')), { generation: 'milan' }).ok, 'Milan\'s ASK does not sign a Rome CEK');
});

t.test('verify: an emulated sevd chain only with its ARK given explicitly', async (t) => {
  const sevd = await startSevd({ guests: [] });
  t.teardown(() => sevd.stop());
  const out = join(tmp, 'export');
  spawnSync(process.execPath, ['dist/server/main.js', 'platform', 'export', '--out', out, '--state-dir', sevd.stateDir]);
  t.equal(owner('verify', '--dir', out, '--ark', 'config/amd-roots/milan/ark.cert').status, 0, 'emulated root given');
  const real = owner('verify', '--dir', out, '--generation', 'milan');
  t.equal(real.status, 1, 'AMD\'s real Milan ARK does not trust it');
  t.match(real.stdout, /not the trusted ARK/);
  // A session for the exported PDH is accepted by the daemon (guest-add with the files).
  t.equal(owner('session', '--pdh', join(out, 'pdh.cert'), '--policy', '1', '--out', join(tmp, 'sess')).status, 0);
  for (const f of ['godh.b64', 'session.b64', 'tek.bin', 'tik.bin']) t.ok(readFileSync(join(tmp, 'sess', f)).length > 0, f);
  const c = await RawClient.connect(sevd.controlPath);
  await c.negotiate();
  const add = await c.execute('guest-add', { name: 'o', paused: true, 'sev-guest': { policy: 1, 'dh-cert-file': join(tmp, 'sess', 'godh.b64'), 'session-file': join(tmp, 'sess', 'session.b64') } });
  t.same(add.return, {}, 'the daemon accepts the toolkit\'s session');
  const g = await RawClient.connect(sevd.guestQmp('o'));
  await g.negotiate();
  const mnonce = Buffer.alloc(16, 9).toString('base64');
  const report = (await g.execute('query-sev-attestation-report', { mnonce })).return.data;
  const ok = owner('attestation', 'verify', '--report', report, '--pek', join(out, 'pek.cert'), '--mnonce', mnonce, '--policy', '1');
  t.equal(ok.status, 0, ok.stdout.trim());
  const bad = owner('attestation', 'verify', '--report', report, '--pek', join(out, 'pek.cert'), '--policy', '3');
  t.equal(bad.status, 1, bad.stdout.trim());
  await Promise.all([g.close(), c.close()]);
});

t.test('T4 and T5 through measurement build / verify', async (t) => {
  const tik4 = file('tik4.bin', Buffer.from('66320db73158a35a255d051758e95ed4', 'hex'));
  const t4 = buildMeasurement(readFileSync(tik4), { apiMajor: 0, apiMinor: 0x12, build: 0x0f }, 0, launchDigest(Buffer.alloc(0)), Buffer.from('4fbe0bedbad6c86ae8f68971d103e554', 'hex'));
  t.equal(Buffer.from(t4, 'base64').subarray(0, 32).toString('hex'), '6faab2daae389bcd3405a05d6cafe33c0414f7bedd0bae19ba5f38b7fd1664ea', 'T4');
  const common = ['--api-major', '1', '--api-minor', '40', '--build', '40', '--policy', '3', '--tik', `${F}/sevctl/tik1.bin`];
  const fw = `${F}/measurement/OVMF.amdsev.fd_trimmed`;
  const b = owner('measurement', 'build', '--firmware', fw, ...common, '--mnonce', 'wxP6tRHCFrFQWxsuqZA8QA==');
  t.equal(b.stdout.trim(), 'oMDewIouJSpbpNRHj7Mk3p08H2dPZQdsZMU14qIymBnDE/q1EcIWsVBbGy6pkDxA', 'T5b');
  const kernel = file('vmlinuz', 'fake vmlinuz\n');
  const initrd = file('initrd', 'fake initrd\n');
  const c = owner('measurement', 'build', '--firmware', fw, '--kernel', kernel, '--initrd', initrd, '--append', 'foo bar baz fake kernel=cmdline', ...common, '--mnonce', 'wxP6tRHCFrFQWxsuqZA8QA==');
  t.equal(c.stdout.trim(), 'h3auYbWQnVW7EGLWN4Hf9SN0oEYMPU2sK4bLnefWPwvDE/q1EcIWsVBbGy6pkDxA', 'T5c');
  t.equal(owner('measurement', 'verify', '--measure', c.stdout.trim(), '--firmware', fw, '--kernel', kernel, '--initrd', initrd, '--append', 'foo bar baz fake kernel=cmdline', ...common).status, 0, 'verify accepts');
  t.equal(owner('measurement', 'verify', '--measure', b.stdout.trim(), '--firmware', fw, '--kernel', kernel, ...common).status, 1, 'verify rejects');
});

t.test('T6 through secret build', async (t) => {
  const measure = 'TLeA7607lZQntLjRY1/i+sbtdSZ+75zxpz4Px9hzpBLwItF5Q2o4prA++3ZZv9ZS';
  const r = owner('secret', 'build', '--tek', `${F}/sevctl/tek1.bin`, '--tik', `${F}/sevctl/secret-tik1.bin`, '--measure', measure,
    '--iv', 'rFR07U3TLH2YnsUj2SVZ7A==', '--secret', '736869e5-84f0-4973-92ec-06879ce3da0b=MY-LUKS-PASSPHRASE',
    '--secret', `736869e5-aaaa-4973-92ec-06879ce3da0b=@${file('other', 'SOME OTHER SECRET')}`);
  t.same(JSON.parse(r.stdout), {
    'packet-header': 'AAAAAKxUdO1N0yx9mJ7FI9klWeyZ3r0dOEKHUOhIRqzGYYvTJgdMtBPL1nK6GD9aGET7Ng==',
    secret: '0U3e5PcXv0UW+H4tSBFKObWYfKE1+j38Bc2fuO16mYiyI+sWx7INfn+lgYj56GL12yyinDa+lVfCC+WWs332lpLNUX1ZI3YK7vYgtys4X+uGxEIlkIQ90v8/w8ZFmQMe',
  }, 'T6b');
  const lib = buildSecret(readFileSync(`${F}/sevctl/tek1.bin`), readFileSync(`${F}/sevctl/secret-tik1.bin`), measure,
    [{ guid: '736869e5-84f0-4973-92ec-06879ce3da0b', data: Buffer.from('MY-LUKS-PASSPHRASE') }], Buffer.from('rFR07U3TLH2YnsUj2SVZ7A==', 'base64'));
  t.equal(lib.header, 'AAAAAKxUdO1N0yx9mJ7FI9klWey8FSzeYQ4X8K71VzNKLU/KQsIsQxLjtbhaPUewqshX5Q==', 'T6a');
});

t.test('T7 launch digests', async (t) => {
  const amd = readFileSync(`${F}/measurement/ovmf_AmdSev_suffix.bin`);
  t.equal(launchDigest(readFileSync(`${F}/measurement/ovmf_OvmfX64_suffix.bin`)).toString('hex'), 'b4c021e085fb83ceffe6571a3d357b4a98773c83c474e47f76c876708fe316da');
  t.equal(launchDigest(amd, { kernel: Buffer.alloc(0), initrd: Buffer.alloc(0), append: 'console=ttyS0 loglevel=7' }).toString('hex'), '82a3ee5d537c3620628270c292ae30cb40c3c878666a7890ee7ef2a08fb535ff');
  t.equal(launchDigest(amd, { kernel: Buffer.alloc(0) }).toString('hex'), '77f613d7bbcdf12a73782ea9e88b0172aeda50d1a54201cb903594ff52846898');
  t.throws(() => launchDigest(readFileSync(`${F}/measurement/ovmf_OvmfX64_suffix.bin`), { kernel: Buffer.alloc(0) }), /doesn't support kernel/);
});

t.test('the example key-broker flow against a fresh daemon', async (t) => {
  const sevd = await startSevd({ guests: [] });
  t.teardown(() => sevd.stop());
  const r = spawnSync(process.execPath, ['dist/clients/examples/attest.js', sevd.controlPath, '--ark', 'config/amd-roots/milan/ark.cert'], { encoding: 'utf8', timeout: 30000 });
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /\[2\] certificate chain verifies/);
  t.match(r.stdout, /\[5\] measurement verifies/);
  t.match(r.stdout, /\[9\] the guest reads secret/);
  t.match(r.stdout, /\[10\] done/);
});

t.test('SEV-ES measurements: library and CLI reproduce vectors E1 and E2 bit for bit', { skip: !existsSync('/usr/share/OVMF/OVMF_CODE.fd') && 'Debian ovmf missing' }, async (t) => {
  const ovmf = readFileSync('/usr/share/OVMF/OVMF_CODE.fd');
  const e1 = '4c55bc8b9c7804ec80940258127e2aae37f818436a54c55cebe89542bd6dc63f';
  const e2 = '6984bb26d575d0e42d22410c14f2f24f55a5a5eebc53ab857e544e247bc26b1b';
  t.equal(launchDigest(ovmf, undefined, { vcpus: 1, vcpuType: 'EPYC-v4' }).toString('hex'), e1, 'E1 (library)');
  const suffix = readFileSync(`${F}/measurement/ovmf_AmdSev_suffix.bin`);
  const amd = Buffer.concat([Buffer.alloc(2 * 1024 * 1024 - suffix.length), suffix]);
  const boot = { kernel: readFileSync(`${F}/snp/vector-kernel.bin`), initrd: readFileSync(`${F}/snp/vector-initrd.bin`), append: 'console=ttyS0' };
  t.equal(launchDigest(amd, boot, { vcpus: 4, vcpuType: 'EPYC-Milan' }).toString('hex'), e2, 'E2 (library)');
  t.throws(() => launchDigest(ovmf, undefined, { vcpus: 1, vcpuType: 'Pentium' }), /unknown vCPU type 'Pentium'/);

  // CLI: the measurement over E1's digest, as T4 defines MEASURE (context 0x04, API, build, policy, LD, MNONCE).
  const tik = Buffer.alloc(16, 0x11);
  const mnonce = Buffer.alloc(16, 0x22);
  const api = ['--api-major', '1', '--api-minor', '55', '--build', '21', '--policy', '5', '--tik', file('es-tik.bin', tik)];
  const built = owner('measurement', 'build', '--firmware', '/usr/share/OVMF/OVMF_CODE.fd', '--vcpus', '1', '--vcpu-type', 'EPYC-v4', ...api, '--mnonce', mnonce.toString('base64'));
  t.equal(built.status, 0, built.stderr);
  t.equal(built.stdout.trim(), buildMeasurement(tik, { apiMajor: 1, apiMinor: 55, build: 21 }, 5, Buffer.from(e1, 'hex'), mnonce), 'sev-owner measurement build --vcpus 1 --vcpu-type EPYC-v4 measures E1');
  const amdPath = file('amdsev2m.fd', amd);
  const kp = file('k.bin', boot.kernel);
  const ip = file('i.bin', boot.initrd);
  const b2 = owner('measurement', 'build', '--firmware', amdPath, '--kernel', kp, '--initrd', ip, '--append', 'console=ttyS0', '--vcpus', '4', '--vcpu-type', 'EPYC-Milan', ...api, '--mnonce', mnonce.toString('base64'));
  t.equal(b2.stdout.trim(), buildMeasurement(tik, { apiMajor: 1, apiMinor: 55, build: 21 }, 5, Buffer.from(e2, 'hex'), mnonce), 'and E2 with kernel hashes and 4 EPYC-Milan vCPUs');
  const v = owner('measurement', 'verify', '--measure', b2.stdout.trim(), '--firmware', amdPath, '--kernel', kp, '--initrd', ip, '--append', 'console=ttyS0', '--vcpus', '4', '--vcpu-type', 'EPYC-Milan', ...api);
  t.equal(v.status, 0, 'measurement verify agrees');
  const wrong = owner('measurement', 'verify', '--measure', b2.stdout.trim(), '--firmware', amdPath, '--kernel', kp, '--initrd', ip, '--append', 'console=ttyS0', '--vcpus', '2', '--vcpu-type', 'EPYC-Milan', ...api);
  t.equal(wrong.status, 1, 'and rejects another vCPU count');
});

t.test('the example key-broker flow, SEV-ES variant (policy 0x5, 4 vCPUs, Debian OVMF)', { skip: !existsSync('/usr/share/OVMF/OVMF_CODE.fd') && 'Debian ovmf missing' }, async (t) => {
  const sevd = await startSevd({ guests: [] });
  t.teardown(() => sevd.stop());
  const r = spawnSync(process.execPath, ['dist/clients/examples/attest.js', sevd.controlPath, '--ark', 'config/amd-roots/milan/ark.cert', '--es'], { encoding: 'utf8', timeout: 30000 });
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /\[4\] guest .* \(SEV-ES, 4 vCPUs\)/);
  t.match(r.stdout, /\[5\] measurement verifies/);
  t.match(r.stdout, /\[6\] attestation report verifies/);
  t.match(r.stdout, /\[9\] the guest reads secret/);
});

t.test('the SNP key-broker example against a fresh daemon', { skip: !existsSync('/usr/share/OVMF/OVMF_CODE.fd') && 'Debian ovmf missing' }, async (t) => {
  const sevd = await startSevd({ guests: [] });
  t.teardown(() => sevd.stop());
  const r = spawnSync(process.execPath, ['dist/clients/examples/snp-broker.js', sevd.controlPath, '--kds', `http://127.0.0.1:${sevd.wsPort}`], { encoding: 'utf8', timeout: 30000 });
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /\[3\] report verifies/);
  t.match(r.stdout, /\[5\] the guest unwrapped the secret/);
  t.match(r.stdout, /\[6\] done/);
});
