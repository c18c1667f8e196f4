/**
 * The owner's SNP report verifier on real data: a real Milan report, its real VCEK and AMD's
 * real Milan chain verify; every single flipped byte of the signed part, the Genoa chain and
 * a VCEK of another chip and TCB are refused with the failing check named.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { verifySnpReport, vcekUrl } from '../../clients/owner/snp-verify.js';
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
