/**
 * Property-based robustness (fast-check): random and mutated inputs to the QMP parser and
 * every binary codec give errors, never exceptions of another kind, and never hang.
 */
import t from 'tap';
import fc from 'fast-check';
import { JsonStreamer } from '../../server/qmp/json/streamer.js';
import { writeJson } from '../../server/qmp/json/writer.js';
import { CertFormatError, decodeSevCert, encodeSevCert } from '../../server/firmware/certs/sev-cert.js';
import { decodeAmdCert } from '../../server/firmware/certs/amd-cert.js';
import { verifyChain } from '../../server/firmware/certs/chain.js';
import { decodePacketHeader, decodeSession } from '../../server/firmware/crypto/launch-crypto.js';
import { decodeReport } from '../../server/firmware/attestation.js';
import { parseOvmfTable } from '../../server/guest/ovmf-table.js';
import { parseSecretTable } from '../../server/guest/efi-secret-table.js';
import { glibBase64Decode } from '../../server/dispatch/glib-base64.js';
import { ByteReader, StreamDecoder, StreamFormatError } from '../../server/migration/stream.js';
import { readFileSync } from 'node:fs';

const RUNS = 400;
let tried = 0;
const count = <T>(a: fc.Arbitrary<T>) => a.map((x) => (tried++, x));

t.test('QMP parser: any bytes, any chunking → values or error texts, and the stream recovers', async (t) => {
  fc.assert(
    fc.property(count(fc.uint8Array({ maxLength: 300 })), fc.integer({ min: 1, max: 17 }), (bytes, chunk) => {
      const items: unknown[] = [];
      const s = new JsonStreamer((i) => items.push(i), { maxNesting: 64, maxTokens: 512, maxTokenBytes: 4096 });
      for (let i = 0; i < bytes.length; i += chunk) s.feed(bytes.subarray(i, i + chunk));
      // A control byte resynchronises; a valid request afterwards must parse.
      s.feed(Buffer.from('\n\u0001{"execute":"x"}'));
      const last = items[items.length - 1] as { value?: Map<string, unknown> };
      return last.value instanceof Map && last.value.get('execute') === 'x';
    }),
    { numRuns: RUNS },
  );
  t.pass('no exception, always recovered');
});

t.test('QMP parser: valid JSON round-trips through the QEMU writer', async (t) => {
  fc.assert(
    fc.property(count(fc.jsonValue({ maxDepth: 4 })), (v) => {
      const text = JSON.stringify(v);
      const items: { value?: unknown; error?: string }[] = [];
      const s = new JsonStreamer((i) => items.push(i));
      s.feed(Buffer.from(text + ' '));
      s.flush();
      if (items.length !== 1 || items[0]!.error) return false;
      // The writer's output parses back to the same data (key order aside).
      const again = JSON.parse(writeJson(items[0]!.value as never));
      return JSON.stringify(sortKeys(again)) === JSON.stringify(sortKeys(JSON.parse(text)));
    }),
    { numRuns: RUNS },
  );
  t.pass('round trip');
});

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object') return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]));
  if (typeof v === 'number' && Object.is(v, -0)) return 0;
  return v;
}

const rome = (n: string) => readFileSync(`test/fixtures/chips/rome/${n}.cert`);
const romeRoot = (n: string) => readFileSync(`test/fixtures/amd-roots/rome/${n}.cert`);

/** A real input with a few bytes changed, cut or extended. */
function mutated(base: Buffer) {
  return count(
    fc.tuple(fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }), fc.integer({ min: -64, max: 64 })).map(([edits, delta]) => {
      const b = Buffer.from(base);
      for (const [at, v] of edits) b[at] = v;
      return delta < 0 ? b.subarray(0, b.length + delta) : Buffer.concat([b, Buffer.alloc(delta)]);
    }),
  );
}

t.test('certificate codecs: mutated real certificates decode or fail with CertFormatError', async (t) => {
  for (const name of ['pdh', 'pek', 'oca', 'cek']) {
    fc.assert(
      fc.property(mutated(rome(name)), (b) => {
        try {
          const c = decodeSevCert(b);
          return encodeSevCert(c).length === 0x824;
        } catch (e) {
          return e instanceof CertFormatError;
        }
      }),
      { numRuns: RUNS / 4 },
    );
  }
  fc.assert(
    fc.property(mutated(romeRoot('ask')), (b) => {
      try {
        decodeAmdCert(b);
        return true;
      } catch (e) {
        return e instanceof CertFormatError;
      }
    }),
    { numRuns: RUNS / 4 },
  );
  fc.assert(
    fc.property(mutated(rome('pdh')), (pdh) => {
      const r = verifyChain({ ark: romeRoot('ark'), ask: romeRoot('ask'), cek: rome('cek'), oca: rome('oca'), pek: rome('pek'), pdh });
      return r.ok ? pdh.equals(rome('pdh')) || pdh.subarray(0, 0x414).equals(rome('pdh').subarray(0, 0x414)) : typeof r.reason === 'string';
    }),
    { numRuns: RUNS / 4 },
  );
  t.pass('codecs');
});

t.test('session, packet header, report, OVMF and secret tables, base64, migration stream', async (t) => {
  fc.assert(fc.property(count(fc.uint8Array({ minLength: 128, maxLength: 128 })), (b) => decodeSession(b).nonce.length === 16), { numRuns: RUNS });
  fc.assert(fc.property(count(fc.uint8Array({ minLength: 52, maxLength: 52 })), (b) => decodePacketHeader(b).mac.length === 32), { numRuns: RUNS });
  fc.assert(
    fc.property(count(fc.uint8Array({ maxLength: 300 })), (b) => {
      try {
        return decodeReport(b).signature.length === 144;
      } catch (e) {
        return e instanceof Error && b.length !== 208;
      }
    }),
    { numRuns: RUNS },
  );
  const ovmf = readFileSync('test/fixtures/measurement/ovmf_AmdSev_suffix.bin');
  fc.assert(fc.property(mutated(ovmf), (b) => {
    const r = parseOvmfTable(b);
    return 'entries' in r ? Array.isArray(r.entries) : typeof r.error === 'string';
  }), { numRuns: RUNS });
  fc.assert(fc.property(count(fc.uint8Array({ maxLength: 400 })), (b) => Array.isArray(parseSecretTable(b))), { numRuns: RUNS });
  fc.assert(fc.property(count(fc.string({ maxLength: 80 })), (s) => glibBase64Decode(s).length <= Math.ceil((s.length * 3) / 4)), { numRuns: RUNS });
  await fc.assert(
    fc.asyncProperty(count(fc.uint8Array({ maxLength: 600 })), async (b) => {
      const r = new ByteReader();
      r.push(Buffer.concat([Buffer.from('SEVDMIG\0\0\0\0\u0001', 'latin1'), Buffer.from(b)]));
      r.end();
      const d = new StreamDecoder(r);
      try {
        await d.header();
        for (let i = 0; i < 50; i++) await d.next();
        return true;
      } catch (e) {
        return e instanceof StreamFormatError || e instanceof SyntaxError || (e instanceof Error && /ended early|length/.test(e.message));
      }
    }),
    { numRuns: RUNS },
  );
  t.pass('decoders');
});

t.test('inputs tried', async (t) => {
  t.ok(tried > 3000, `${tried} random and mutated inputs`);
  t.comment(`property-based inputs tried: ${tried}`);
});
