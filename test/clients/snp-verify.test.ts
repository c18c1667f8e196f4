/**
 * The owner's SNP report verifier on real data: a real Milan report, its real VCEK and AMD's
 * real Milan chain verify; every single flipped byte of the signed part, the Genoa chain and
 * a VCEK of another chip and TCB are refused with the failing check named. `--chain` without
 * `--generation` takes the product from the chain's ARK or the report's CPUID (issue 22 item 10).
 */
import 'reflect-metadata';
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { snpProductOf, verifySnpReport, vcekUrl } from '../../clients/owner/snp-verify.js';
import { decodeSnpReport, SNP_SIGNED_SIZE } from '../../abi/snp/report.js';
import { decodeTcb, encodeTcb } from '../../abi/snp/tcb.js';
import { readVcekExtensions } from '../../abi/snp/vcek.js';

const F = 'test/fixtures/snp';
const report = readFileSync(`${F}/milan-report.bin`);
const vcek = readFileSync(`${F}/milan-vcek.der`);
const owner = (...args: string[]) => spawnSync(process.execPath, ['dist/clients/owner/cli.js', ...args], { encoding: 'utf8' });

t.test('codecs on real data', async (t) => {
  const r = decodeSnpReport(report);
  t.equal(r.version, 2);
  t.equal(r.policy, 0x30000n);
  t.same(decodeTcb('Milan', r.reportedTcb), { bootloader: 3, tee: 0, snp: 8, microcode: 115 });
  t.equal(encodeTcb('Milan', decodeTcb('Milan', r.reportedTcb)), r.reportedTcb, 'TCB round trip (Milan layout)');
  const turin = readVcekExtensions(readFileSync(`${F}/turin-vcek.der`));
  t.same([turin.productName, turin.structVersion, turin.hwId.length], ['Turin', 1, 8], 'Turin VCEK: product, struct version 1, 8-byte hwID');
  t.same(decodeTcb('Turin', encodeTcb('Turin', turin.tcb)), turin.tcb, 'TCB round trip (Turin layout)');
  t.match(vcekUrl('http://kds', 'Milan', report), /^http:\/\/kds\/vcek\/v1\/Milan\/d49554ec717f4e5b[0-9a-f]{112}\?blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115$/, "the KDS URL from the report's chip id and reported TCB");
});

t.test('the real Milan report verifies against AMD\'s real Milan chain', async (t) => {
  const r = await verifySnpReport(report, { product: 'Milan', vcek, expect: { policy: 0x30000n, minTcb: { bootloader: 3, tee: 0, snp: 8, microcode: 115 } } });
  t.ok(r.ok, r.checks.filter((c) => !c.ok).map((c) => c.check).join(', '));
  t.ok(r.checks.length >= 10, `${r.checks.length} checks`);
  const cli = owner('snp', 'verify', '--report', `${F}/milan-report.bin`, '--generation', 'milan', '--vcek', `${F}/milan-vcek.der`);
  t.equal(cli.status, 0, 'sev-owner snp verify: exit 0');
  t.match(cli.stdout, /SNP report verifies\n$/);
});

t.test('refusals, each naming the failing check', async (t) => {
  let flips = 0;
  for (let i = 0; i < SNP_SIGNED_SIZE; i++) {
    const bad = Buffer.from(report);
    bad[i]! ^= 0x01;
    const r = await verifySnpReport(bad, { product: 'Milan', vcek });
    if (!r.ok && r.checks.some((c) => c.check === 'report signed by VCEK' && !c.ok)) flips++;
  }
  t.equal(flips, SNP_SIGNED_SIZE, `all ${SNP_SIGNED_SIZE} single-byte flips of the signed part are refused: report signed by VCEK`);
  const cases: [string[], RegExp][] = [
    [['--generation', 'genoa'], /SNP report rejected: VCEK signed by ASK; VCEK product/],
    [['--generation', 'milan', '--vcek', `${F}/turin-vcek.der`], /rejected: .*report signed by VCEK.*VCEK TCB = reported TCB.*VCEK hwID = chip id/],
    [['--generation', 'milan', '--measurement', '00'.repeat(48)], /rejected: measurement$/m],
    [['--generation', 'milan', '--min-tcb', '3,0,9,115'], /rejected: reported TCB ≥ minimum$/m],
  ];
  for (const [args, re] of cases) {
    const a = args.includes('--vcek') ? args : [...args, '--vcek', `${F}/milan-vcek.der`];
    const r = owner('snp', 'verify', '--report', `${F}/milan-report.bin`, ...a);
    t.equal(r.status, 1, `${args.join(' ')}: exit 1`);
    t.match(r.stdout, re);
  }
  const flipped = Buffer.from(report);
  flipped[0x90]! ^= 0x80;
  const r = await verifySnpReport(flipped, { product: 'Milan', vcek });
  t.same(r.checks.filter((c) => !c.ok).map((c) => c.check), ['report signed by VCEK'], 'a flipped measurement byte: only the signature check fails');
  t.equal(owner('snp', 'verify', '--report', `${F}/milan-report.bin`).status, 2, 'missing --generation: usage error');
});

t.test('--chain without --generation: the product from the chain or the report', async (t) => {
  const milanChain = 'clients/owner/amd-roots/snp/ask_ark_milan.pem';
  const cli = owner('snp', 'verify', '--report', `${F}/milan-report.bin`, '--chain', milanChain, '--vcek', `${F}/milan-vcek.der`);
  t.equal(cli.status, 0, `--chain ${milanChain}, no --generation: exit 0 (${cli.stderr.trim()})`);
  t.match(cli.stdout, /SNP report verifies\n$/);
  t.equal(snpProductOf(report, readFileSync('clients/owner/amd-roots/snp/ask_ark_genoa.pem', 'utf8')), 'Genoa', 'ARK-Genoa names Genoa');

  // A version 3 report names the product by its CPUID family/model (the signature is not the point here).
  const v3 = (family: number, model: number) => {
    const r = Buffer.from(report);
    r.writeUInt32LE(3, 0);
    r[0x188] = family;
    r[0x189] = model;
    return r;
  };
  t.same([snpProductOf(v3(0x19, 0x01)), snpProductOf(v3(0x19, 0x11)), snpProductOf(v3(0x19, 0xa0)), snpProductOf(v3(0x1a, 0x02)), snpProductOf(v3(0x17, 0x31))],
    ['Milan', 'Genoa', 'Genoa', 'Turin', null], 'report v3 CPUID: Milan, Genoa, Genoa (Bergamo), Turin, and Rome names none');

  // A chain whose ARK names no product, with a version 2 report: nothing tells, so a clear usage error.
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  const arkKeys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const askKeys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const span = { notBefore: new Date('2025-01-01'), notAfter: new Date('2035-01-01') };
  const ark = await x509.X509CertificateGenerator.createSelfSigned({ serialNumber: '01', name: 'CN=Some Root', keys: arkKeys, signingAlgorithm: alg, ...span });
  const ask = await x509.X509CertificateGenerator.create({ serialNumber: '02', subject: 'CN=Some Signer', issuer: ark.subject, publicKey: askKeys.publicKey, signingKey: arkKeys.privateKey, signingAlgorithm: alg, ...span });
  const dir = mkdtempSync(join(tmpdir(), 'snp-verify-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'chain.pem'), `${ask.toString('pem')}\n${ark.toString('pem')}\n`);
  const none = owner('snp', 'verify', '--report', `${F}/milan-report.bin`, '--chain', join(dir, 'chain.pem'), '--vcek', `${F}/milan-vcek.der`);
  t.equal(none.status, 2, 'nothing names the product: usage error');
  t.match(none.stderr, /--generation is required: the chain's ARK does not name a product .* the report \(version 2\) carries no CPUID family\/model/);
  t.match(owner('snp', 'verify', '--report', `${F}/milan-report.bin`).stderr, /--generation is required: the report \(version 2\) carries no CPUID/, 'no chain, version 2 report: the same error');
});
