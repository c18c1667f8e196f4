/**
 * The SNP CPUID page: the byte layout of linux `struct snp_cpuid_table` (checked against
 * offsets written by hand), the VMM's table for each EPYC model, and the firmware's check
 * per generation with the page it writes back and QEMU's report of the differences.
 */
import t from 'tap';
import {
  CPUID_FUNCTION_SIZE, CpuidBit, cpuidFunction, cpuidMismatchLines, decodeCpuidPage, encodeCpuidPage, SNP_CPUID_COUNT_MAX,
} from '../../abi/snp/cpuid.js';
import { CPU_MODELS, cpuModelHasAvx512, cpuSignature, HOST_SIGNATURE, signatureFms } from '../../abi/vmsa.js';
import { vcpuCpuid } from '../../server/sev/vcpu-cpuid.js';
import { checkCpuidPage } from '../../server/firmware/snp-cpuid-check.js';
import type { Generation } from '../../server/firmware/emulated-root.js';

t.test('the page layout: count at 0, 48-byte functions from offset 16', async (t) => {
  const f = { ...cpuidFunction(0xd, 1, { eax: 0x11111111, ebx: 0x22222222, ecx: 0x33333333, edx: 0x44444444 }), xcr0In: 0x0102030405060708n, xssIn: 0x1112131415161718n };
  const page = encodeCpuidPage([cpuidFunction(0, 0, { eax: 1, ebx: 2, ecx: 3, edx: 4 }), f]);
  const v = new DataView(page.buffer, page.byteOffset, page.byteLength);
  t.equal(page.length, 4096);
  t.equal(v.getUint32(0, true), 2, 'count');
  t.equal(CPUID_FUNCTION_SIZE, 48);
  const o = 16 + 48;
  t.same([v.getUint32(o, true), v.getUint32(o + 4, true)], [0xd, 1], 'EAX_IN, ECX_IN');
  t.equal(v.getBigUint64(o + 8, true), 0x0102030405060708n, 'XCR0_IN');
  t.equal(v.getBigUint64(o + 16, true), 0x1112131415161718n, 'XSS_IN');
  t.same([24, 28, 32, 36].map((d) => v.getUint32(o + d, true)), [0x11111111, 0x22222222, 0x33333333, 0x44444444], 'EAX..EDX');
  t.equal(page.subarray(o + 40).some((b) => b !== 0), false, 'reserved and the rest: zero');
  t.same(decodeCpuidPage(page), { count: 2, functions: [cpuidFunction(0, 0, { eax: 1, ebx: 2, ecx: 3, edx: 4 }), f] }, 'round trip');
  t.throws(() => encodeCpuidPage(Array.from({ length: SNP_CPUID_COUNT_MAX + 1 }, () => f)), RangeError, 'at most 64 functions');
});

t.test('signatureFms inverts cpuSignature for every EPYC model and chip', async (t) => {
  for (const sig of [...Object.values(CPU_MODELS), ...Object.values(HOST_SIGNATURE)]) {
    const f = signatureFms(sig);
    t.equal(cpuSignature(f.family, f.model, f.stepping), sig, `0x${sig.toString(16)}`);
  }
  t.same(signatureFms(0xa10f11), { family: 25, model: 17, stepping: 1 });
});

const table = (cpu: string, g: Generation) => encodeCpuidPage(vcpuCpuid({
  signature: cpu === 'host' ? HOST_SIGNATURE[g]! : CPU_MODELS[cpu]!, avx512: cpuModelHasAvx512(cpu, g), smp: 4, cbitpos: 51, reducedPhysBits: 1,
}));

t.test('each generation takes the models it can run', async (t) => {
  const fits: [string, Generation][] = [
    ['EPYC-v4', 'milan'], ['EPYC-Rome', 'milan'], ['EPYC-Milan', 'milan'], ['host', 'milan'],
    ['EPYC-Milan', 'genoa'], ['EPYC-Genoa', 'genoa'], ['host', 'genoa'], ['EPYC-Genoa', 'turin'], ['EPYC-Turin', 'turin'], ['host', 'turin'],
  ];
  for (const [cpu, g] of fits) t.same(checkCpuidPage(g, table(cpu, g)), { ok: true }, `${cpu} on ${g}`);
  t.same(checkCpuidPage('milan', Buffer.alloc(4096)), { ok: true }, 'an empty page (count 0)');
});

t.test('a milan chip refuses EPYC-Genoa: the corrected page has its signature and no AVX-512', async (t) => {
  const provided = table('EPYC-Genoa', 'milan');
  const r = checkCpuidPage('milan', provided);
  if (r.ok || !r.corrected) throw new Error('expected a corrected page');
  const before = decodeCpuidPage(provided).functions;
  const after = decodeCpuidPage(r.corrected).functions;
  t.equal(after.length, before.length, 'the same entries');
  const leaf = (fs: typeof after, n: number) => fs.find((f) => f.eaxIn === n)!;
  t.equal(leaf(after, 1).eax, HOST_SIGNATURE.milan, 'CPUID(1).EAX: the chip\'s own');
  t.equal(leaf(after, 7).ebx & CpuidBit.LEAF7_EBX_AVX512, 0, 'AVX-512 cleared');
  t.equal(leaf(before, 7).ebx & ~CpuidBit.LEAF7_EBX_AVX512, leaf(after, 7).ebx, '... and nothing else of leaf 7');
  const lines = cpuidMismatchLines(provided, r.corrected);
  t.equal(lines.length, 2, 'two entries differ');
  t.equal(lines[0], 'SEV-SNP: CPUID validation failed for function 0x1, index: 0x0, provided: eax:0x00a10f10, ebx: 0x00040800, ecx: 0xf6d83203, edx: 0x178bfbff, ' +
    'expected: eax:0x00a00f11, ebx: 0x00040800, ecx: 0xf6d83203, edx: 0x178bfbff', "QEMU's text");
  t.match(lines[1], /^SEV-SNP: CPUID validation failed for function 0x7, index: 0x0, provided: eax:0x00000000, ebx: 0xf1bf07a9, .* expected: eax:0x00000000, ebx: 0x219c07a9,/);
});

t.test('the SEV leaf: only the generation\'s features; unreadable counts', async (t) => {
  const fns = [cpuidFunction(0x8000001f, 0, { eax: CpuidBit.SEV | CpuidBit.SEV_ES | CpuidBit.SEV_SNP, ebx: 51, ecx: 0, edx: 0 })];
  const rome = checkCpuidPage('rome', encodeCpuidPage(fns));
  if (rome.ok || !rome.corrected) throw new Error('expected a corrected page');
  t.equal(decodeCpuidPage(rome.corrected).functions[0]!.eax, CpuidBit.SEV | CpuidBit.SEV_ES, 'rome: no SNP bit');
  t.same(checkCpuidPage('milan', encodeCpuidPage(fns)), { ok: true }, 'milan: all three');
  const over = encodeCpuidPage([]);
  over.writeUInt32LE(SNP_CPUID_COUNT_MAX + 1, 0);
  t.same(checkCpuidPage('genoa', over), { ok: false, corrected: null }, 'a count above 64: refused, nothing to write back');
  const a = encodeCpuidPage(fns);
  const b = encodeCpuidPage([...fns, ...fns]);
  t.same(cpuidMismatchLines(a, b), ['SEV-SNP: CPUID validation failed due to count mismatch, provided: 1, expected: 2']);
});
