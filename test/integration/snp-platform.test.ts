/**
 * The SNP platform (docs/interface.md §9, §11): status, SNP_CONFIG, SNP_COMMIT and the TCB stand-in;
 * the VCEK per TCB and its X.509 chain over the KDS-compatible endpoint, checked with
 * independent code (node's X509Certificate for the RSA-PSS chain, @peculiar/x509 to read
 * the extensions) against AMD's real VCEKs as the format reference.
 */
import t from 'tap';
import 'reflect-metadata';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { X509Certificate as PeculiarCert } from '@peculiar/x509';
import { startSevd, type SevdProcess } from '../helpers/sevd-process.js';
import { control } from '../helpers/migration.js';

const F = 'test/fixtures/snp';
const pemCerts = (pem: string) => (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((p) => new X509Certificate(p));

/** Extension OID → DER value, read by an independent X.509 parser. */
function extensions(der: Buffer): Map<string, string> {
  return new Map(new PeculiarCert(der).extensions.map((e) => [e.type, Buffer.from(e.value).toString('hex')]));
}

const derInt = (n: number) => (n < 0x80 ? `0201${n.toString(16).padStart(2, '0')}` : `020200${n.toString(16).padStart(2, '0')}`);

async function vcekOf(sevd: SevdProcess, product: string, chipHex: string, tcb: Record<string, number>) {
  const q = `blSPL=${tcb['bootloader']}&teeSPL=${tcb['tee']}&snpSPL=${tcb['snp']}&ucodeSPL=${tcb['microcode']}${product === 'Turin' ? `&fmcSPL=${tcb['fmc'] ?? 0}` : ''}`;
  const res = await fetch(`http://127.0.0.1:${sevd.wsPort}/vcek/v1/${product}/${chipHex}?${q}`);
  return { status: res.status, type: res.headers.get('content-type'), der: Buffer.from(await res.arrayBuffer()) };
}

t.test('milan: status, KDS chain and VCEK, TCB changes, restart', async (t) => {
  const cfgTcb = { bootloader: 3, tee: 0, snp: 8, microcode: 115 };
  let sevd = await startSevd({ guests: [], platform: { generation: 'milan', seed: '5eed', snp: { tcb: { ...cfgTcb, fmc: null } } } });
  const stateDir = sevd.stateDir;
  const runDir = sevd.runDir;
  t.teardown(() => sevd.stop());
  let ctl = await control(sevd);
  const st = (await ctl.execute('sev-snp-platform-status')).return;
  const cpu0 = Buffer.from((await ctl.execute('query-sev-capabilities')).return['cpu0-id'], 'base64').toString('hex');
  t.match(st, { 'api-major': 1, 'api-minor': 55, state: 'init', 'rmp-initialized': true, 'mask-chip-id': false, 'mask-chip-key': false, 'current-tcb': cfgTcb, 'reported-tcb': cfgTcb, 'committed-tcb': cfgTcb });
  t.equal(st['chip-id'], cpu0, 'chip id: the 64 bytes GET_ID returns, in hex');

  const base = `http://127.0.0.1:${sevd.wsPort}`;
  const chainRes = await fetch(`${base}/vcek/v1/Milan/cert_chain`);
  t.equal(chainRes.status, 200, 'cert_chain needs no token');
  const [ask, ark] = pemCerts(await chainRes.text());
  t.ok(ark!.verify(ark!.publicKey), 'ARK self-signed (RSASSA-PSS)');
  t.ok(ask!.verify(ark!.publicKey), 'ASK signed by the ARK');
  t.match(ark!.subject, /CN=ARK-Milan/);
  t.match(ask!.subject, /CN=SEV-Milan/);
  const realChain = pemCerts(readFileSync('clients/owner/amd-roots/snp/ask_ark_milan.pem', 'utf8'));
  t.notOk(ask!.verify(realChain[1]!.publicKey), "AMD's real ARK does not vouch for the emulated ASK");
  const amdFormatAsk = Buffer.from((await ctl.execute('sev-export-certs')).return.ask, 'base64');
  const modulus = Buffer.from(ask!.publicKey.export({ format: 'jwk' }).n!, 'base64url');
  t.ok(Buffer.from(amdFormatAsk.subarray(0x40 + 512, 0x40 + 1024)).reverse().equals(modulus), 'the X.509 ASK has the same RSA key as the AMD-format ASK');

  const v = await vcekOf(sevd, 'Milan', st['chip-id'], cfgTcb);
  t.equal(v.status, 200);
  t.equal(v.type, 'application/pkix-cert');
  const vcek = new X509Certificate(v.der);
  t.ok(vcek.verify(ask!.publicKey), 'VCEK signed by the ASK');
  t.equal(vcek.serialNumber, '0', "serial 0, as AMD's");
  t.equal(vcek.publicKey.asymmetricKeyDetails?.namedCurve, 'secp384r1');
  t.equal(new Date(vcek.validTo).getTime() - new Date(vcek.validFrom).getTime(), Math.round(7 * 365.25 * 86400) * 1000, '7-year validity');
  const mine = extensions(v.der);
  const real = extensions(readFileSync(`${F}/milan-vcek.der`));
  t.same([...mine.keys()], [...real.keys()], "the extensions of AMD's real Milan VCEK, in the same order");
  t.equal(mine.get('1.3.6.1.4.1.3704.1.2'), real.get('1.3.6.1.4.1.3704.1.2'), 'product name Milan-B0 as an IA5String');
  t.equal(mine.get('1.3.6.1.4.1.3704.1.3.1'), derInt(3), 'blSPL = the TCB');
  t.equal(mine.get('1.3.6.1.4.1.3704.1.3.3'), derInt(8), 'snpSPL');
  t.equal(mine.get('1.3.6.1.4.1.3704.1.3.8'), derInt(115), 'ucodeSPL');
  t.equal(mine.get('1.3.6.1.4.1.3704.1.4'), st['chip-id'], 'hwID: the raw chip id, no DER wrapper');

  // Another TCB: another VCEK; the old one is still served.
  const newTcb = { bootloader: 4, tee: 1, snp: 9, microcode: 120 };
  t.same((await ctl.execute('sev-snp-set-tcb', newTcb)).return, {});
  const v2 = await vcekOf(sevd, 'Milan', st['chip-id'], newTcb);
  t.notOk(new X509Certificate(v2.der).publicKey.export({ format: 'der', type: 'spki' }).equals(vcek.publicKey.export({ format: 'der', type: 'spki' })), 'a new TCB: a new VCEK key');
  const again = await vcekOf(sevd, 'Milan', st['chip-id'], cfgTcb);
  t.ok(new X509Certificate(again.der).publicKey.export({ format: 'der', type: 'spki' }).equals(vcek.publicKey.export({ format: 'der', type: 'spki' })), "the old TCB's VCEK is still served");
  t.same((await ctl.execute('sev-snp-platform-status')).return['current-tcb'], newTcb);

  // Refusals.
  t.same((await ctl.execute('sev-snp-set-config', { 'reported-tcb': { ...newTcb, snp: 10 } })).error.desc, 'SEV: SNP_CONFIG failed: fw_err=22 (Invalid parameter)', 'reported TCB above current');
  t.same((await ctl.execute('sev-snp-set-config', { 'reported-tcb': cfgTcb, 'mask-chip-id': true })).return, {});
  t.match((await ctl.execute('sev-snp-platform-status')).return, { 'reported-tcb': cfgTcb, 'mask-chip-id': true });
  t.same((await ctl.execute('sev-snp-commit')).return, {});
  t.same((await ctl.execute('sev-snp-platform-status')).return['committed-tcb'], newTcb, 'SNP_COMMIT: committed := current');
  t.match((await ctl.execute('sev-snp-set-tcb', cfgTcb)).error.desc, /^SEV-SNP: TCB .* is below the committed TCB/, 'a TCB below the committed one is refused');
  t.equal((await fetch(`${base}/vcek/v1/Genoa/cert_chain`)).status, 404, 'another product: 404');
  t.equal((await vcekOf(sevd, 'Milan', '00'.repeat(64), cfgTcb)).status, 404, 'another chip: 404');
  t.equal((await fetch(`${base}/vcek/v1/Milan/${st['chip-id']}?blSPL=3`)).status, 400, 'missing SPLs: 400');
  await ctl.close();

  // kill -9 and restart: the same chip at the same TCB has the same VCEK; TCB state persisted.
  sevd.proc.kill('SIGKILL');
  await new Promise((r) => sevd.proc.once('exit', r));
  sevd = await startSevd({ guests: [], stateDir, runDir, platform: { generation: 'milan', seed: '5eed' } });
  ctl = await control(sevd);
  const after = (await ctl.execute('sev-snp-platform-status')).return;
  t.match(after, { 'current-tcb': newTcb, 'committed-tcb': newTcb, 'reported-tcb': cfgTcb, 'mask-chip-id': true }, 'the TCBs and masks survive kill -9');
  const restarted = await vcekOf(sevd, 'Milan', st['chip-id'], cfgTcb);
  t.ok(new X509Certificate(restarted.der).publicKey.export({ format: 'der', type: 'spki' }).equals(vcek.publicKey.export({ format: 'der', type: 'spki' })), 'the VCEK for the same TCB has the same public key after a restart');
  await ctl.close();
});

t.test('turin: 8-byte hwID, fmcSPL, struct version 1', async (t) => {
  const sevd = await startSevd({ guests: [], platform: { generation: 'turin', snp: { tcb: { bootloader: 1, tee: 2, snp: 3, microcode: 9, fmc: 4 } } } });
  t.teardown(() => sevd.stop());
  const ctl = await control(sevd);
  const st = (await ctl.execute('sev-snp-platform-status')).return;
  t.same(st['current-tcb'], { bootloader: 1, tee: 2, snp: 3, microcode: 9, fmc: 4 });
  const v = await vcekOf(sevd, 'Turin', st['chip-id'].slice(0, 16), st['current-tcb']);
  t.equal(v.status, 200, 'Turin names the chip by its first 8 bytes');
  const mine = extensions(v.der);
  const real = extensions(readFileSync(`${F}/turin-vcek.der`));
  t.same([...mine.keys()], [...real.keys()], "the extensions of AMD's real Turin VCEK, in the same order");
  t.equal(mine.get('1.3.6.1.4.1.3704.1.1'), derInt(1), 'struct version 1');
  t.equal(mine.get('1.3.6.1.4.1.3704.1.3.9'), derInt(4), 'fmcSPL');
  t.equal(mine.get('1.3.6.1.4.1.3704.1.4'), st['chip-id'].slice(0, 16), '8-byte hwID');
  t.equal(mine.get('1.3.6.1.4.1.3704.1.2'), real.get('1.3.6.1.4.1.3704.1.2'), 'product name Turin');
  await ctl.close();
});

t.test('naples and rome: no SNP', async (t) => {
  for (const generation of ['naples', 'rome']) {
    const sevd = await startSevd({ guests: [], platform: { generation, cbitpos: 47 } });
    const ctl = await control(sevd);
    for (const [cmd, args, fw] of [['sev-snp-platform-status', undefined, 'SNP_PLATFORM_STATUS'], ['sev-snp-set-config', { 'mask-chip-id': true }, 'SNP_CONFIG'], ['sev-snp-commit', undefined, 'SNP_COMMIT']] as const) {
      t.same((await ctl.execute(cmd, args)).error, { class: 'GenericError', desc: `SEV: ${fw} failed: fw_err=17 (Invalid command)` }, `${generation}: ${cmd} refused`);
    }
    t.equal((await fetch(`http://127.0.0.1:${sevd.wsPort}/vcek/v1/Milan/cert_chain`)).status, 404, `${generation}: no KDS`);
    await ctl.close();
    await sevd.stop();
  }
});
