/**
 * The batched page crypto (WASM kernels around ECB calls) against independent code paths:
 * the P4 vector, node's own aes-128-xts per page, node's aes-128-ctr and @noble/ciphers'
 * CTR, including counter carries and partial ranges; and the memory controller's batched
 * decrypt/encrypt against its single-page path.
 */
import t from 'tap';
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { ctr as nobleCtr } from '@noble/ciphers/aes.js';
import { ctrKey, PageBatch, xtsKey } from '../../server/memory/bulk/page-batch.js';
import { MemoryController } from '../../server/memory/memory-controller.js';

const seq = (from: number, n: number) => Buffer.from(Array.from({ length: n }, (_, i) => (from + i) & 0xff));
const tweakOf = (spa: number) => {
  const b = Buffer.alloc(16);
  b.writeBigUInt64LE(BigInt(spa));
  return b;
};

t.test('P4 vector through the batched XTS', async (t) => {
  const b = new PageBatch();
  const key = xtsKey(seq(0, 32));
  const pattern = Buffer.from(Array.from({ length: 4096 }, (_, i) => i % 256));
  b.slot(0).fill(0);
  b.slot(1).set(pattern);
  b.slot(2).fill(0);
  const dests = [new Uint8Array(4096), new Uint8Array(4096), new Uint8Array(4096)];
  b.xts('encrypt', key, [0, 1, 2], [0x12345000, 0x12345000, 0x12346000], dests);
  t.equal(Buffer.from(dests[0]!.subarray(0, 32)).toString('hex'), '334541508fbae6dccf30a9bf3d9ed6965308fd74401140a53457eb9b43e933e3');
  t.equal(createHash('sha256').update(dests[0]!).digest('hex'), '561e37fa1a17d8e56680a668ebea64abac04bf78c72c4d1f0325f9fc5e68a9cf');
  t.equal(createHash('sha256').update(dests[1]!).digest('hex'), '3901bfe04716f10f0ff4e87b6d85dfdc83c22ad20db9ae57e52f05f781e73504');
  t.equal(Buffer.from(dests[2]!.subarray(0, 32)).toString('hex'), 'efb44c3b117a775d2abca1af94aac0033f4834512893b53276f1fc8da10e6ecc');
  b.slot(5).set(dests[1]!);
  b.xts('decrypt', key, [5], [0x12345000]);
  t.ok(Buffer.from(b.slot(5)).equals(pattern), 'decrypts in place');
});

t.test('XTS batches equal node aes-128-xts page by page', async (t) => {
  const b = new PageBatch();
  for (let round = 0; round < 20; round++) {
    const vek = randomBytes(32);
    const key = xtsKey(vek);
    const n = 1 + (round % PageBatch.CAPACITY);
    // SPAs across the 2^32 boundary and high in the 1 TiB windows guests get.
    const spas = Array.from({ length: n }, (_, i) => (round + 1) * 2 ** 40 + (i * 977 + round * 2 ** 20) * 4096 + (i % 3 === 0 ? 2 ** 32 : 0));
    const plains = spas.map(() => randomBytes(4096));
    const slots = spas.map((_, i) => (i * 5) % PageBatch.CAPACITY).filter((s, i, a) => a.indexOf(s) === i);
    const used = slots.map((_, j) => j);
    slots.forEach((s, j) => b.slot(s).set(plains[j]!));
    const dests = used.map(() => new Uint8Array(4096));
    b.xts('encrypt', key, slots, used.map((j) => spas[j]!), dests);
    const same = used.every((j) => Buffer.from(dests[j]!).equals(createCipheriv('aes-128-xts', vek, tweakOf(spas[j]!)).update(plains[j]!)));
    t.ok(same, `round ${round}: ${slots.length} pages encrypt as node's XTS`);
    slots.forEach((s, j) => b.slot(s).set(dests[j]!));
    b.xts('decrypt', key, slots, used.map((j) => spas[j]!));
    t.ok(slots.every((s, j) => Buffer.from(b.slot(s)).equals(plains[j]!)), `round ${round}: and decrypt back`);
  }
  t.throws(() => b.xts('encrypt', xtsKey(randomBytes(32)), new Array(PageBatch.CAPACITY + 1).fill(0), new Array(PageBatch.CAPACITY + 1).fill(0)), RangeError);
});

t.test('CTR batches equal node aes-128-ctr and @noble/ciphers', async (t) => {
  const b = new PageBatch();
  const tek = randomBytes(16);
  const key = ctrKey(tek);
  const ivs = [
    Buffer.from('ffffffffffffffffffffffffffffff80', 'hex'), // wraps the whole 128-bit counter
    Buffer.from('0000000000000000ffffffffffffffff', 'hex'), // carries into the high 64 bits
    Buffer.from('00000000000000000000000000000000', 'hex'),
    ...Array.from({ length: 9 }, () => randomBytes(16)),
  ];
  const items = ivs.map((iv, slot) => ({ slot, off: slot === 3 ? 4080 : slot === 4 ? 32 : 0, len: slot === 3 ? 16 : slot === 4 ? 1008 : 4096, iv }));
  const plains = items.map(() => randomBytes(4096));
  items.forEach((it) => b.slot(it.slot).set(plains[it.slot]!));
  b.ctr(key, items);
  for (const it of items) {
    const got = Buffer.from(b.slot(it.slot).subarray(it.off, it.off + it.len));
    const range = plains[it.slot]!.subarray(it.off, it.off + it.len);
    t.ok(got.equals(createCipheriv('aes-128-ctr', tek, it.iv).update(range)), `slot ${it.slot}: node`);
    t.ok(got.equals(Buffer.from(nobleCtr(tek, it.iv).encrypt(range))), `slot ${it.slot}: @noble`);
    t.ok(Buffer.from(b.slot(it.slot).subarray(0, it.off)).equals(plains[it.slot]!.subarray(0, it.off)), `slot ${it.slot}: bytes before the range untouched`);
  }
  t.throws(() => b.ctr(key, [{ slot: 0, off: 8, len: 16, iv: ivs[0]! }]), RangeError, 'ranges are 16-byte aligned');
});

t.test('memory controller: batched and single-page paths agree', async (t) => {
  const mc = new MemoryController();
  const vek = randomBytes(32);
  mc.installKey(7, vek);
  const b = new PageBatch();
  const spas = [2 ** 40, 2 ** 40 + 4096, 2 ** 41 + 99 * 4096];
  const plains = spas.map(() => randomBytes(4096));
  plains.forEach((p, i) => b.slot(i).set(p));
  const dests = spas.map(() => Buffer.alloc(4096));
  mc.encryptSlotsTo(7, b, [0, 1, 2], spas, dests);
  t.ok(dests.every((d, i) => d.equals(mc.encryptPage(7, spas[i]!, plains[i]!))), 'encryptSlotsTo = encryptPage');
  dests.forEach((d, i) => b.slot(i).set(d));
  mc.decryptSlots(7, b, [0, 1, 2], spas);
  t.ok(plains.every((p, i) => Buffer.from(b.slot(i)).equals(p)), 'decryptSlots = plaintext');
  mc.removeKey(7);
  t.throws(() => mc.decryptSlots(7, b, [0], [spas[0]!]), /no key/);
});
