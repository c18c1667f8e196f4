/**
 * SEV-SNP guests end to end on a milan and a genoa daemon, as a guest owner and a key
 * broker see them: an SNP guest on Debian's OVMF_CODE.fd with 4 vCPUs asks (through its
 * guest agent, i.e. a VMPCK-encrypted guest message) for a report with fresh report data;
 * `sev-owner snp verify` checks it against sevd's KDS and the measurement `snp measure`
 * predicts; ID blocks launch or refuse the launch with the firmware's status; derived keys
 * behave; the host never sees plaintext.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSevd, type SevdProcess } from '../helpers/sevd-process.js';
import { control, monitor } from '../helpers/migration.js';
import { RawClient } from '../helpers/raw-client.js';
import { decodeSnpReport } from '../../abi/snp/report.js';
import { decodeTcb } from '../../abi/snp/tcb.js';
import { encodeSnpPublicKey } from '../../abi/snp/id-block.js';
import { encodeCertTable, CERT_GUID } from '../../abi/snp/cert-table.js';
import { decodeCpuidPage } from '../../abi/snp/cpuid.js';
import { MSG, openSnpMessage, readVmpcks, reportRequest, reportResponse, sealSnpMessage } from '../helpers/snp-message.js';
import { parseSevMetadata, SectionType } from '../../abi/snp/ovmf-metadata.js';
import { parseOvmfTable, type OvmfEntry } from '../../abi/ovmf-table.js';

const OVMF = '/usr/share/OVMF/OVMF_CODE.fd';
const owner = (...args: string[]) => spawnSync(process.execPath, ['dist/clients/owner/cli.js', ...args], { encoding: 'utf8' });
const VMSA_BASE = 0xff_fff0_0000;
const G_PAT = Buffer.from('0604070006040700', 'hex');

async function agent(sevd: SevdProcess, name: string) {
  return RawClient.connect(sevd.guestQga(name));
}

for (const [generation, product, cpu] of [['milan', 'Milan', 'EPYC-Milan'], ['genoa', 'Genoa', 'EPYC-Genoa']] as const) {
  t.test(`${generation}: an SNP guest attested through sevd's KDS`, { skip: !existsSync(OVMF) && 'Debian ovmf missing' }, async (t) => {
    const sevd = await startSevd({ guests: [], platform: { generation } });
    t.teardown(() => sevd.stop());
    const dir = mkdtempSync(join(tmpdir(), 'sevd-snp-'));
    const ctl = await control(sevd);
    const hostData = randomBytes(32);
    const certs = encodeCertTable([{ guid: CERT_GUID.ARK, data: Buffer.from('ark') }, { guid: CERT_GUID.VCEK, data: Buffer.from('vcek') }]);
    writeFileSync(join(dir, 'certs.bin'), certs);
    const spec = { name: 'snp', memory: '256M', firmware: OVMF, smp: 4, cpu, 'sev-snp-guest': { policy: 0x30000, 'host-data': hostData.toString('base64'), 'certs-filename': join(dir, 'certs.bin') } };
    t.same((await ctl.execute('guest-add', spec)).return, {}, 'guest-add: an SNP guest with 4 vCPUs');
    const g = await monitor(sevd, 'snp');
    t.same((await g.execute('query-sev')).return, { enabled: true, 'api-major': 1, 'api-minor': 55, 'build-id': 21, state: 'running', 'sev-type': 'sev-snp', 'snp-policy': 0x30000 }, 'query-sev: sev-type sev-snp');
    t.equal((await g.execute('query-sev-launch-measure')).error.desc, 'SEV launch measurement is not available');
    t.equal((await g.execute('query-sev-attestation-report', { mnonce: Buffer.alloc(16).toString('base64') })).error.desc, 'SEV-SNP guests do not support this command');
    t.match((await g.execute('human-monitor-command', { 'command-line': 'info sev' })).return, /^SEV type: sev-snp\r?\nstate: running/);

    const a = await agent(sevd, 'snp');
    const reportData = randomBytes(64);
    const r = (await a.execute('guest-snp-report', { 'report-data': reportData.toString('base64'), extended: true })).return;
    const report = Buffer.from(r.report, 'base64');
    t.equal(report.length, 1184);
    t.same(r.certs, [{ guid: CERT_GUID.ARK, data: Buffer.from('ark').toString('base64') }, { guid: CERT_GUID.VCEK, data: Buffer.from('vcek').toString('base64') }], 'extended: the host\'s certificate table');
    writeFileSync(join(dir, 'report.bin'), report);
    const chain = await (await fetch(`http://127.0.0.1:${sevd.wsPort}/vcek/v1/${product}/cert_chain`)).text();
    writeFileSync(join(dir, 'chain.pem'), chain);
    const measured = owner('snp', 'measure', '--firmware', OVMF, '--vcpus', '4', '--vcpu-type', cpu);
    t.equal(measured.status, 0);
    const v = owner('snp', 'verify', '--report', join(dir, 'report.bin'), '--generation', generation, '--chain', join(dir, 'chain.pem'), '--kds', `http://127.0.0.1:${sevd.wsPort}`,
      '--measurement', measured.stdout.trim(), '--report-data', reportData.toString('hex'), '--host-data', hostData.toString('hex'), '--policy', '0x30000');
    t.equal(v.status, 0, `sev-owner snp verify against sevd's KDS: ${v.stdout.split('\n').filter((l) => l.startsWith('FAIL')).join('; ')}`);
    t.match(v.stdout, /ok {3}VCEK fetched: http:\/\/127\.0\.0\.1:\d+\/vcek\/v1\//);
    const wired = owner('snp', 'verify', '--report', join(dir, 'report.bin'), '--generation', generation, '--chain', join(dir, 'chain.pem'), '--kds', `http://127.0.0.1:${sevd.wsPort}`, '--firmware', OVMF, '--vcpus', '4', '--vcpu-type', cpu);
    t.equal(wired.status, 0, 'snp verify --firmware/--vcpus: the measurement snp measure predicts');
    t.equal(owner('snp', 'verify', '--report', join(dir, 'report.bin'), '--generation', generation, '--chain', join(dir, 'chain.pem'), '--kds', `http://127.0.0.1:${sevd.wsPort}`, '--firmware', OVMF, '--vcpus', '2', '--vcpu-type', cpu).status, 1, '... and refuses another vCPU count');
    t.equal(owner('snp', 'verify', '--report', join(dir, 'report.bin'), '--generation', generation, '--kds', `http://127.0.0.1:${sevd.wsPort}`).status, 1, "against AMD's real chain: refused");

    const d = decodeSnpReport(report);
    const st = (await ctl.execute('sev-snp-platform-status')).return;
    t.equal(d.version, 3);
    t.equal(d.measurement.toString('hex'), measured.stdout.trim(), 'MEASUREMENT = snp measure');
    t.ok(d.reportData.equals(reportData), 'REPORT_DATA as asked');
    t.ok(d.hostData.equals(hostData), 'HOST_DATA as set');
    t.equal(d.policy, 0x30000n, 'POLICY');
    t.equal(d.vmpl, 0, 'VMPL');
    t.equal(d.chipId.toString('hex'), st['chip-id'], 'CHIP_ID');
    t.same(decodeTcb(product, d.reportedTcb), st['reported-tcb'], 'REPORTED_TCB');
    t.same((await a.execute('guest-sev-features')).return, { sev: true, 'sev-es': true, 'sev-snp': true, 'sev-features': 1 });

    // Host views of private pages and VMSAs: ciphertext only.
    const secret = Buffer.from('snp plaintext never for the host '.repeat(4));
    await a.execute('guest-memory-write', { gpa: 0x200000, data: secret.toString('base64') });
    const dump = join(dir, 'dump.bin');
    t.same((await g.execute('memsave', { val: 0x200000, size: 4096, filename: dump })).return, {});
    t.equal(readFileSync(dump).indexOf(secret.subarray(0, 16)), -1, 'memsave of a private page: no plaintext');
    t.notMatch((await g.execute('human-monitor-command', { 'command-line': 'xp /8xb 0x200000' })).return, /0x73 0x6e 0x70 0x20/, 'xp: no plaintext');
    t.same((await g.execute('pmemsave', { val: VMSA_BASE, size: 4 * 4096, filename: dump })).return, {});
    t.equal(readFileSync(dump).indexOf(G_PAT), -1, 'pmemsave of the VMSAs: no plaintext register state');
    t.equal((await g.execute('migrate', { uri: 'tcp:127.0.0.1:1' })).error.desc, 'SEV-SNP: Migration is not implemented');

    // Derived keys.
    const key = async (ag: RawClient, args: object = {}) => (await ag.execute('guest-snp-derive-key', args)).return.key as string;
    t.equal(await key(a), await key(a), 'equal inputs: equal keys');
    t.not(await key(a, { 'guest-field-select': 8 }), await key(a), 'the measurement field changes the key');
    t.not(await key(a, { 'root-key': 'vmrk' }), await key(a), 'VMRK and VCEK roots differ');
    const same = await key(a, { 'guest-field-select': 9 });
    t.same((await ctl.execute('guest-add', { ...spec, name: 'snp2', smp: 2, 'sev-snp-guest': { policy: 0x30000 } })).return, {});
    t.same((await ctl.execute('guest-add', { ...spec, name: 'snp3', 'sev-snp-guest': { policy: 0x20000 } })).return, {});
    const a2 = await agent(sevd, 'snp2');
    const a3 = await agent(sevd, 'snp3');
    t.not(await key(a2, { 'guest-field-select': 8 }), await key(a, { 'guest-field-select': 8 }), 'another measurement (2 vCPUs): another key');
    t.equal(await key(a3), await key(a), 'no fields selected: the same chip key for both');
    t.not(await key(a3, { 'guest-field-select': 1 }), await key(a, { 'guest-field-select': 1 }), 'another policy: another key');
    const before = await key(a);
    await ctl.execute('sev-snp-set-tcb', { ...st['current-tcb'], snp: st['current-tcb'].snp + 1 });
    t.not(await key(a), before, 'a TCB change: another key');
    t.not(await key(a, { 'guest-field-select': 9 }), same);
    t.equal((await a.execute('guest-snp-report', { 'report-data': 'AA==', vmpl: 4 })).error.class, 'GenericError', 'an invalid VMPL is refused');
    await Promise.all([a.close(), a2.close(), a3.close(), g.close(), ctl.close()]);
  });
}

t.test('ID blocks: signed for the measurement, the launch finishes; otherwise it fails and leaves nothing', { skip: !existsSync(OVMF) && 'Debian ovmf missing' }, async (t) => {
  const sevd = await startSevd({ guests: [] });
  t.teardown(() => sevd.stop());
  const dir = mkdtempSync(join(tmpdir(), 'sevd-idb-'));
  const ctl = await control(sevd);
  const idKey = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
  const authorKey = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
  writeFileSync(join(dir, 'id.pem'), idKey.export({ format: 'pem', type: 'pkcs8' }));
  writeFileSync(join(dir, 'author.pem'), authorKey.export({ format: 'pem', type: 'pkcs8' }));
  const measurement = owner('snp', 'measure', '--firmware', OVMF, '--vcpus', '4', '--vcpu-type', 'EPYC-v4').stdout.trim();
  const idBlock = (m: string, policy = '0x30000') => JSON.parse(owner('snp', 'id-block', '--measurement', m, '--policy', policy, '--id-key', join(dir, 'id.pem'), '--author-key', join(dir, 'author.pem'), '--family-id', '11'.repeat(16)).stdout);
  const add = (name: string, ib: { 'id-block': string; 'id-auth': string }, extra: object = {}) =>
    ctl.execute('guest-add', { name, memory: '128M', firmware: OVMF, smp: 4, 'sev-snp-guest': { policy: 0x30000, 'author-key-enabled': true, ...ib, ...extra } });
  t.same((await add('good', idBlock(measurement))).return, {}, 'an ID block for this measurement and policy launches');
  const a = await agent(sevd, 'good');
  const r = decodeSnpReport(Buffer.from((await a.execute('guest-snp-report', {})).return.report, 'base64'));
  await a.close();
  t.equal(r.idKeyDigest.toString('hex'), createHash('sha384').update(encodeSnpPublicKey(idKey)).digest('hex'), 'the report carries the ID key digest');
  t.equal(r.authorKeyDigest.toString('hex'), createHash('sha384').update(encodeSnpPublicKey(authorKey)).digest('hex'), '... and the author key digest');
  t.equal(r.familyId.toString('hex'), '11'.repeat(16));
  const clean = async () => ({
    guests: (await ctl.execute('query-guests')).return.map((x: any) => x.name),
    contexts: (await ctl.execute('sev-platform-status')).return['guest-count'],
    asids: (await ctl.execute('query-asids')).return['in-use'].length,
  });
  const before = await clean();
  const bad = idBlock('00'.repeat(48));
  t.same((await add('other', bad)).error.desc, 'SEV: SNP_LAUNCH_FINISH failed: fw_err=11 (Bad measurement)', 'an ID block for another measurement');
  t.same((await add('policy', idBlock(measurement, '0x20000'))).error.desc, 'SEV: SNP_LAUNCH_FINISH failed: fw_err=7 (Policy is not allowed)', 'a wrong policy');
  const forged = idBlock(measurement);
  const auth = Buffer.from(forged['id-auth'], 'base64');
  auth[0x41]! ^= 0x55;
  t.same((await add('sig', { 'id-block': forged['id-block'], 'id-auth': auth.toString('base64') })).error.desc, 'SEV: SNP_LAUNCH_FINISH failed: fw_err=10 (Bad signature)', 'a bad signature');
  t.same(await clean(), before, 'no guest, context or ASID left by the refused launches');
  t.same((await ctl.execute('guest-add', { name: 'x', 'sev-snp-guest': { 'id-block': 'AAAA' } })).error.desc, 'parameter length of 3 not equal to 96', "QEMU's text for a short id-block");
  await ctl.close();
});

t.test('SNP needs QEMU 9.1 and an SNP generation', async (t) => {
  const old = await startSevd({ guests: [], qemuVersion: '9.0.0' });
  let c = await control(old);
  t.equal((await c.execute('guest-add', { name: 'x', 'sev-snp-guest': {} })).error.desc, "Parameter 'sev-snp-guest' is unexpected", 'QEMU 9.0 does not know the object');
  await c.close();
  await old.stop();
  const rome = await startSevd({ guests: [], platform: { generation: 'rome', cbitpos: 47 } });
  c = await control(rome);
  t.equal((await c.execute('guest-add', { name: 'x', 'sev-snp-guest': { cbitpos: 47 } })).error.desc, 'sev_common_kvm_init: host kernel does not support the requested SEV configuration.', 'rome: no SNP VM type');
  t.same((await c.execute('query-guests')).return, []);
  await c.close();
  await rome.stop();
});

t.test('the CPUID page: the guest reads its model; guest-sealed messages: replays refused; a chip that cannot run the model refuses the launch', { skip: !existsSync(OVMF) && 'Debian ovmf missing' }, async (t) => {
  const sevd = await startSevd({ guests: [], platform: { generation: 'milan' } });
  t.teardown(() => sevd.stop());
  const ctl = await control(sevd);
  const image = readFileSync(OVMF);
  const section = parseSevMetadata(image, (parseOvmfTable(image) as { entries: OvmfEntry[] }).entries).find((s) => s.type === SectionType.CPUID)!;
  const spec = (name: string, cpu: string) => ({ name, memory: '128M', firmware: OVMF, smp: 2, cpu, 'sev-snp-guest': {} });
  t.same((await ctl.execute('guest-add', spec('milan', 'EPYC-Milan'))).return, {}, 'EPYC-Milan on milan launches');
  const a = await agent(sevd, 'milan');
  const page = Buffer.from((await a.execute('guest-memory-read', { gpa: section.gpa, size: 4096 })).return.data, 'base64');
  await a.close();
  const { count, functions } = decodeCpuidPage(page);
  t.ok(count > 0, `the guest's CPUID page holds ${count} functions`);
  t.equal(functions.find((f) => f.eaxIn === 1)!.eax, 0xa00f11, 'CPUID(1).EAX: EPYC-Milan');
  t.equal(functions.find((f) => f.eaxIn === 0x8000001f)!.ebx & 0x3f, 51, 'the C-bit position');

  // Guest code sealing its own messages (test/helpers/snp-message.ts): the firmware answers
  // request n with n+1 and refuses a replayed or skipped number.
  const a2 = await agent(sevd, 'milan');
  const [vmpck0] = await readVmpcks(a2, OVMF);
  const reportData = randomBytes(64);
  const seal = (seqno: bigint) => sealSnpMessage(vmpck0!, { seqno, type: MSG.REPORT_REQ, vmpck: 0, payload: reportRequest(reportData, 0) });
  const message = async (seqno: bigint) => a2.execute('guest-snp-message', { request: seal(seqno) });
  const first = (await message(1n)).return.response;
  const opened = openSnpMessage(vmpck0!, first);
  t.equal(opened.seqno, 2n, 'the response takes the next sequence number');
  t.equal(opened.type, MSG.REPORT_RSP, 'MSG_REPORT_RSP');
  const rsp = reportResponse(opened.payload);
  t.equal(rsp.status, 0, 'status 0');
  t.ok(decodeSnpReport(rsp.report).reportData.equals(reportData), 'a report for our REPORT_DATA');
  t.match((await message(1n)).error, { class: 'GenericError', desc: 'SEV: SNP_GUEST_REQUEST failed: fw_err=22 (Invalid parameter)' }, 'a replayed sequence number is refused');
  t.match((await message(5n)).error, { desc: /fw_err=22/ }, 'a skipped one too');
  t.equal(Buffer.from((await message(3n)).return.response, 'base64').readBigUInt64LE(32), 4n, 'the next one in order is answered');
  await a2.close();

  const clean = async () => ({
    guests: (await ctl.execute('query-guests')).return.map((x: any) => x.name),
    contexts: (await ctl.execute('sev-platform-status')).return['guest-count'],
    asids: (await ctl.execute('query-asids')).return['in-use'].length,
  });
  const before = await clean();
  const r = await ctl.execute('guest-add', spec('genoa', 'EPYC-Genoa'));
  const lines = r.error.desc.split('\n');
  t.equal(lines[0], 'SEV: SNP_LAUNCH_UPDATE failed: fw_err=22 (Invalid parameter)', "the firmware's status");
  t.match(lines[1], /^SEV-SNP: CPUID validation failed for function 0x1, index: 0x0, provided: eax:0x00a10f10, .* expected: eax:0x00a00f11, /, 'the signature, as QEMU reports it');
  t.match(lines[2], /^SEV-SNP: CPUID validation failed for function 0x7, index: 0x0, /, 'AVX-512');
  t.equal(lines.at(-1), 'SEV-SNP: failed update CPUID page');
  t.same(await clean(), before, 'no guest, context or ASID left');
  await ctl.close();
});
