/** Public test vectors T1–T7 and project vectors P1, P3, P4, through the code the firmware uses. */
import t from 'tap';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  aes128ctr, buildSession, ecdhSecret, hmac256, kdf, launchMeasure, MAC_LAUNCH_SECRET, packetMac, sessionKeys, unwrapSession,
} from '../../abi/launch-crypto.js';
import { p384KeyFromScalar, publicOf } from '../../server/firmware/keys.js';
import { verifyReport } from '../../abi/attestation-report.js';
import { MemoryController } from '../../server/memory/memory-controller.js';
import { buildSecretTable } from '../../abi/efi-secret-table.js';
import { buildKernelHashesTable } from '../../abi/kernel-hashes.js';
import { findEntry, parseOvmfTable, readBaseSize, SEV_HASH_TABLE_BLOCK_GUID, SEV_SECRET_BLOCK_GUID } from '../../abi/ovmf-table.js';

const hex = (s: string) => Buffer.from(s.replace(/\s/g, ''), 'hex');
const seq = (from: number, n: number) => Buffer.from(Array.from({ length: n }, (_, i) => from + i));
const z16 = Buffer.alloc(16);
const F = 'test/fixtures';

t.test('T1 KDF', async (t) => {
  t.equal(kdf(z16, 'sev-master-secret', z16).toString('hex'), 'ab4d269fcc62bedb4511d56c386ce706');
});

t.test('T2 HMAC', async (t) => {
  t.equal(hmac256(z16, Buffer.alloc(4)).toString('hex'), 'aa7855e13839dd767cd5da7c1ff5036540c9264b7a803029315e55375287b4af');
});

t.test('T3 session', async (t) => {
  const keys = sessionKeys(z16, z16);
  const s = buildSession(keys, z16, z16, z16, z16, 0);
  t.equal(s.subarray(0x10, 0x30).toString('hex'), '2137bc7f9bb8bd7c3e55a576a15d3454b3856b8ba27afadf46dcfee9f02c02c4');
  t.equal(s.subarray(0x40, 0x60).toString('hex'), '3176c0752738bd9d5e86689534020f528c088f16238826b000b327dee6aeed7d');
  t.equal(s.toString('base64'), 'AAAAAAAAAAAAAAAAAAAAACE3vH+buL18PlWldqFdNFSzhWuLonr630bc/unwLALEAAAAAAAAAAAAAAAAAAAAADF2wHUnOL2dXoZolTQCD1KMCI8WI4gmsACzJ97mru19qnhV4Tg53XZ81dp8H/UDZUDJJkt6gDApMV5VN1KHtK8=');
  t.same(unwrapSession(keys, s, 0), { tek: z16, tik: z16 }, 'the firmware unwraps it');
  t.equal(unwrapSession(keys, s, 1), undefined, 'POLICY_MAC binds the policy');
});

t.test('T4 measurement', async (t) => {
  const m = launchMeasure(hex('66320db73158a35a255d051758e95ed4'), { apiMajor: 0, apiMinor: 0x12, build: 0x0f }, 0,
    createHash('sha256').digest(), hex('4fbe0bedbad6c86ae8f68971d103e554'));
  t.equal(m.toString('hex'), '6faab2daae389bcd3405a05d6cafe33c0414f7bedd0bae19ba5f38b7fd1664ea');
});

t.test('T5 measurement with real inputs', async (t) => {
  const tik = readFileSync(`${F}/sevctl/tik1.bin`);
  t.equal(tik.toString('hex'), '3569cf61a32a602b87185ac6e0f55913');
  const mnonce = Buffer.from('wxP6tRHCFrFQWxsuqZA8QA==', 'base64');
  const out = (ld: Buffer) => Buffer.concat([launchMeasure(tik, { apiMajor: 1, apiMinor: 40, build: 40 }, 3, ld, mnonce), mnonce]).toString('base64');
  t.equal(out(Buffer.from('xkvRAfyaSizgonxAjZIAkR8TmolUabBKQKb6KJCDDSM=', 'base64')), 'lswbxWxI9gckya16JQvdFtpYmNO4b+3inAPpqsgoBI7DE/q1EcIWsVBbGy6pkDxA', 'T5a');
  const fw = readFileSync(`${F}/measurement/OVMF.amdsev.fd_trimmed`);
  t.equal(out(createHash('sha256').update(fw).digest()), 'oMDewIouJSpbpNRHj7Mk3p08H2dPZQdsZMU14qIymBnDE/q1EcIWsVBbGy6pkDxA', 'T5b');
  const table = buildKernelHashesTable(Buffer.from('fake vmlinuz\n'), Buffer.from('fake initrd\n'), 'foo bar baz fake kernel=cmdline');
  t.equal(out(createHash('sha256').update(fw).update(table).digest()), 'h3auYbWQnVW7EGLWN4Hf9SN0oEYMPU2sK4bLnefWPwvDE/q1EcIWsVBbGy6pkDxA', 'T5c');
});

t.test('T6 launch secret', async (t) => {
  const tek = readFileSync(`${F}/sevctl/tek1.bin`);
  const tik = readFileSync(`${F}/sevctl/secret-tik1.bin`);
  const iv = Buffer.from('rFR07U3TLH2YnsUj2SVZ7A==', 'base64');
  const measure = Buffer.from('TLeA7607lZQntLjRY1/i+sbtdSZ+75zxpz4Px9hzpBLwItF5Q2o4prA++3ZZv9ZS', 'base64').subarray(0, 32);
  const packet = (entries: { guid: string; data: Buffer }[]) => {
    const table = buildSecretTable(entries);
    const ct = aes128ctr(tek, iv, table);
    const mac = packetMac(MAC_LAUNCH_SECRET, tik, { flags: 0, iv }, table.length, ct, measure);
    return { table, header: Buffer.concat([Buffer.alloc(4), iv, mac]).toString('base64'), payload: ct.toString('base64') };
  };
  const a = packet([{ guid: '736869e5-84f0-4973-92ec-06879ce3da0b', data: Buffer.from('MY-LUKS-PASSPHRASE') }]);
  t.equal(a.table.toString('hex'), '42f5741edd71664d963eef4287ff173b3a000000e5696873f084734992ec06879ce3da0b260000004d592d4c554b532d50415353504852415345000000000000');
  t.equal(a.header, 'AAAAAKxUdO1N0yx9mJ7FI9klWey8FSzeYQ4X8K71VzNKLU/KQsIsQxLjtbhaPUewqshX5Q==', 'T6a header');
  t.equal(a.payload, '0U3e5PcXv0UW+H4tSBFKOdCYfKE1+j38Bc2fuO16mYiyI+sWx7INfn+lgYj56GL12yyinDa+lVfCCwD/2w5cPA==', 'T6a payload');
  const b = packet([
    { guid: '736869e5-84f0-4973-92ec-06879ce3da0b', data: Buffer.from('MY-LUKS-PASSPHRASE') },
    { guid: '736869e5-aaaa-4973-92ec-06879ce3da0b', data: Buffer.from('SOME OTHER SECRET') },
  ]);
  t.equal(b.header, 'AAAAAKxUdO1N0yx9mJ7FI9klWeyZ3r0dOEKHUOhIRqzGYYvTJgdMtBPL1nK6GD9aGET7Ng==', 'T6b header');
  t.equal(b.payload, '0U3e5PcXv0UW+H4tSBFKObWYfKE1+j38Bc2fuO16mYiyI+sWx7INfn+lgYj56GL12yyinDa+lVfCC+WWs332lpLNUX1ZI3YK7vYgtys4X+uGxEIlkIQ90v8/w8ZFmQMe', 'T6b payload');
  for (const f of ['secret3.txt', 'secret4.txt']) {
    const data = readFileSync(`${F}/sevctl/${f}`);
    t.equal(buildSecretTable([{ guid: '736869e5-84f0-4973-92ec-06879ce3da0b', data }]).length, 16384, `T6d ${f} (${data.length} bytes)`);
  }
});

t.test('T7 launch digest from OVMF GUID tables', async (t) => {
  const x64 = readFileSync(`${F}/measurement/ovmf_OvmfX64_suffix.bin`);
  const amd = readFileSync(`${F}/measurement/ovmf_AmdSev_suffix.bin`);
  t.equal(createHash('sha256').update(x64).digest('hex'), 'b4c021e085fb83ceffe6571a3d357b4a98773c83c474e47f76c876708fe316da');
  const tableOf = (img: Buffer) => {
    const r = parseOvmfTable(img);
    if ('error' in r) throw new Error(r.error);
    return r.entries;
  };
  t.same(readBaseSize(findEntry(tableOf(amd), SEV_SECRET_BLOCK_GUID)), { base: 0x810000, size: 0xc00 });
  t.same(readBaseSize(findEntry(tableOf(amd), SEV_HASH_TABLE_BLOCK_GUID)), { base: 0x810c00, size: 0x400 });
  t.same(readBaseSize(findEntry(tableOf(x64), SEV_HASH_TABLE_BLOCK_GUID)), { base: 0, size: 0 }, 'OvmfX64 has no hash area');
  const table = buildKernelHashesTable(Buffer.alloc(0), Buffer.alloc(0), 'console=ttyS0 loglevel=7');
  t.equal(table.toString('hex'),
    '06d63894224fc94cb479a793d411fd21a800d82dd09720bd944caa78e7714d36ab2a3200321c8eec6a77bad179511397f913a083067ad8cb737bb260aacbfe8df70fc50a31f7ba442f3ad74b9af141e29169781d3200e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8553794e74dd2ab7f42b835d5b172d2045b3200e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8550000000000000000');
  t.equal(createHash('sha256').update(amd).update(table).digest('hex'), '82a3ee5d537c3620628270c292ae30cb40c3c878666a7890ee7ef2a08fb535ff');
  const noInitrd = buildKernelHashesTable(Buffer.alloc(0), null, null);
  t.equal(createHash('sha256').update(amd).update(noInitrd).digest('hex'), '77f613d7bbcdf12a73782ea9e88b0172aeda50d1a54201cb903594ff52846898');
  const sevctl = tableOf(readFileSync(`${F}/measurement/OVMF.amdsev.fd_trimmed`));
  t.same(readBaseSize(findEntry(sevctl, SEV_SECRET_BLOCK_GUID)), { base: 0x80c000, size: 0xc00 });
});

const N = BigInt('0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973');
const keyFromLabel = (label: string) => p384KeyFromScalar(BigInt('0x' + createHash('sha384').update(label).digest('hex')) % N);

t.test('P1 ECDH through secret', async (t) => {
  const pdh = keyFromLabel('pdh');
  const godh = keyFromLabel('godh');
  const jwk = publicOf(pdh).export({ format: 'jwk' });
  t.equal(Buffer.from(jwk.x!, 'base64url').toString('hex'), '095f2956450c9b69d166ea1a02ab9ef816b2af6f27b25510b53706a4b0f55da6cabd5b11620b5f0550a24113cd2ab84b');
  const z = ecdhSecret(pdh, publicOf(godh));
  t.equal(z.toString('hex'), 'fc78f7662cf0b481b0d7e4eeda9e3d13fe2b9405b92ad8eb0de0613917d53badbb4b38685c4073735e7ba5156b79f91c');
  t.ok(ecdhSecret(godh, publicOf(pdh)).equals(z), 'symmetric');
  const keys = sessionKeys(z, seq(0x30, 16));
  t.equal(keys.kek.toString('hex'), '79bf41166f41f3a04bb9abc0a9b2b283');
  t.equal(keys.kik.toString('hex'), 'f4f9beb06887df9bc70b6bea1e1ed99a');
  const session = buildSession(keys, seq(0, 16), seq(0x10, 16), seq(0x30, 16), seq(0x20, 16), 1);
  t.equal(session.toString('hex'), '303132333435363738393a3b3c3d3e3f87cd765d5a26844ed5505817af0fd462467486a25c26d79ecfe5af83134965f4202122232425262728292a2b2c2d2e2fe322654bde7285db50cc573a2e97623f0cc0951bd46fff6f0ba5e0d8960c7d5d89f5c5270e42e9d15fbb2d8a0c81e38d8b52d39a50528aed63516b64bd4f8f75');
  const ld = createHash('sha256').update(Buffer.alloc(4096)).digest();
  const measure = launchMeasure(seq(0x10, 16), { apiMajor: 0, apiMinor: 24, build: 15 }, 1, ld, seq(0x40, 16));
  t.equal(measure.toString('hex'), 'aef277a3be6932c8a647fd36edad77e7507938adaa7c8953434747221b174110');
  const secret = Buffer.from('0123456789abcdef0123456789abcdef');
  const ct = aes128ctr(seq(0, 16), seq(0x50, 16), secret);
  t.equal(ct.toString('hex'), '0ec18396d730ab9c19c583581805a1ac63143eefa6bd3b10686b5e17b05fd6f2');
  t.equal(packetMac(MAC_LAUNCH_SECRET, seq(0x10, 16), { flags: 0, iv: seq(0x50, 16) }, 32, ct, measure).toString('hex'), '112f9fda8f5660bcaa38ba9ac8ac33fbb7976d7d10db0e6d4c20bc9d74a48d09');
  t.equal(packetMac(MAC_LAUNCH_SECRET, seq(0x10, 16), { flags: 0, iv: seq(0x50, 16) }, 32, ct).toString('hex'), '06c4b3fa20e572296f64dfa489fbfa5b1db4fd9513fd05c38bc4a1c6f38c0d07');
});

t.test('P3 attestation report verification', async (t) => {
  const pek = keyFromLabel('pek');
  const report = Buffer.from('QEFCQ0RFRkdISUpLTE1OT61/rLJYb8bpZsAE19HRawJPWAX/fLR8eoXavYtIiSynAQAAAAIQAAACAAAAAAAAAOnZJsTu9QptG9zfPTAaGANC99LFwliHzt1wYYvI6jxNdpO79kreqnwWjund40IhlwAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAFRcfPGyfoJNFrz5uRVp1WTZAK/SEw6dmnRb1HNtfem8/KWJ3lCuv/PRydidOpr4qQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==', 'base64');
  t.ok(verifyReport(report, publicOf(pek)), 'the reference report verifies');
  const bad = Buffer.from(report);
  bad[0x30] ^= 1;
  t.notOk(verifyReport(bad, publicOf(pek)), 'a changed policy does not');
});

t.test('P4 memory encryption', async (t) => {
  const mc = new MemoryController();
  mc.installKey(1, seq(0, 32));
  const pattern = Buffer.from(Array.from({ length: 4096 }, (_, i) => i % 256));
  const zeros = mc.encryptPage(1, 0x12345000, Buffer.alloc(4096));
  t.equal(zeros.subarray(0, 32).toString('hex'), '334541508fbae6dccf30a9bf3d9ed6965308fd74401140a53457eb9b43e933e3');
  t.equal(createHash('sha256').update(zeros).digest('hex'), '561e37fa1a17d8e56680a668ebea64abac04bf78c72c4d1f0325f9fc5e68a9cf');
  const pat = mc.encryptPage(1, 0x12345000, pattern);
  t.equal(createHash('sha256').update(pat).digest('hex'), '3901bfe04716f10f0ff4e87b6d85dfdc83c22ad20db9ae57e52f05f781e73504');
  t.equal(mc.encryptPage(1, 0x12346000, Buffer.alloc(4096)).subarray(0, 32).toString('hex'), 'efb44c3b117a775d2abca1af94aac0033f4834512893b53276f1fc8da10e6ecc');
  t.ok(mc.decryptPage(1, 0x12345000, pat).equals(pattern), 'round trip');
});
