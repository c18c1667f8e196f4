/**
 * Property-based robustness (fast-check): random and mutated inputs to the QMP parser and
 * every binary codec give errors, never exceptions of another kind, and never hang.
 */
import t from 'tap';
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { JsonStreamer } from '../../server/qmp/json/streamer.js';
import { writeJson } from '../../server/qmp/json/writer.js';
import { CertFormatError, decodeSevCert, encodeSevCert } from '../../abi/certs/sev-cert.js';
import { decodeAmdCert } from '../../abi/certs/amd-cert.js';
import { verifyChain } from '../../abi/certs/chain.js';
import { decodePacketHeader, decodeSession } from '../../abi/launch-crypto.js';
import { decodeReport } from '../../abi/attestation-report.js';
import { parseOvmfTable } from '../../abi/ovmf-table.js';
import { parseSecretTable } from '../../abi/efi-secret-table.js';
import { glibBase64Decode } from '../../server/util/base64.js';
import { encodeHeader, encodeRecord, type StreamRecord } from '../../server/migration/stream.js';
import { StreamFormatError, StreamParser } from '../../server/migration/stream-parser.js';
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
  fc.assert(
    fc.property(count(fc.uint8Array({ maxLength: 600 })), fc.integer({ min: 1, max: 64 }), (b, cut) => {
      const p = new StreamParser();
      const bytes = Buffer.concat([encodeHeader(), Buffer.from(b)]);
      try {
        for (let at = 0; at < bytes.length; at += cut) {
          p.push(bytes.subarray(at, at + cut));
          for (let i = 0; i < 50 && p.next(); i++);
        }
        return true;
      } catch (e) {
        return e instanceof StreamFormatError;
      }
    }),
    { numRuns: RUNS },
  );
  t.pass('decoders');
});

/** Random stream records (the first encrypted one carries the SEND_START blob). */
const recordArb: fc.Arbitrary<StreamRecord> = fc.oneof(
  fc.record({ kind: fc.constant('page' as const), gpa: fc.nat(2 ** 30).map((n) => n * 4096), data: fc.integer({ min: 0, max: 255 }).map((v) => Buffer.alloc(4096, v)) }),
  fc.record({ kind: fc.constant('zero' as const), gpa: fc.nat(2 ** 30).map((n) => n * 4096) }),
  fc.record({
    kind: fc.constant('encrypted' as const), gpa: fc.nat(2 ** 30).map((n) => n * 4096),
    header: fc.uint8Array({ minLength: 52, maxLength: 52 }).map((a) => Buffer.from(a)),
    trans: fc.integer({ min: 1, max: 256 }).chain((n) => fc.uint8Array({ minLength: 16 * n, maxLength: 16 * n })).map((a) => Buffer.from(a)),
  }),
  // A well-formed list: ranges in order, not empty, not overlapping (the parser refuses others).
  fc.record({
    kind: fc.constant('shared' as const),
    ranges: fc.array(fc.tuple(fc.nat(2 ** 20), fc.integer({ min: 1, max: 2 ** 20 })), { maxLength: 5 }).map((steps) => {
      let at = 0;
      return steps.map(([gap, len]): [number, number] => [(at += gap), (at += len)]);
    }),
  }),
  fc.constant({ kind: 'eos' as const }),
  fc.record({ kind: fc.constant('device' as const), state: fc.record({ running: fc.boolean() }) }),
);

t.test('migration stream: any records, any chunking, parse back equal', async (t) => {
  const start = { policy: 0x1, pdh: Buffer.alloc(2084, 7), session: Buffer.alloc(128, 9) };
  fc.assert(
    fc.property(count(fc.array(recordArb, { maxLength: 12 })), fc.array(fc.integer({ min: 1, max: 9000 }), { minLength: 1, maxLength: 8 }), (recs, cuts) => {
      let first = true;
      // fast-check builds null-prototype objects; the parser returns plain ones.
      const plain = recs.map((r): StreamRecord => (r.kind === 'device' ? { ...r, state: { ...r.state } } : { ...r }));
      const sent = plain.map((r) => (r.kind === 'encrypted' && first ? ((first = false), { ...r, start }) : r));
      const bytes = Buffer.concat([encodeHeader(), ...sent.map(encodeRecord)]);
      const p = new StreamParser();
      const got: StreamRecord[] = [];
      for (let at = 0, i = 0; at < bytes.length; i++) {
        const n = cuts[i % cuts.length]!;
        p.push(bytes.subarray(at, at + n));
        at += n;
        for (let r = p.next(); r; r = p.next()) {
          // A shared-regions list may come in pieces: join them back.
          const last = got[got.length - 1];
          if (last?.kind === 'shared' && last.more) got[got.length - 1] = { kind: 'shared', ranges: [...last.ranges, ...(r.kind === 'shared' ? r.ranges : [])], ...(r.kind === 'shared' && r.more ? { more: true } : {}) };
          else got.push(r);
        }
      }
      return p.buffered === 0 && isDeepStrictEqual(got, sent);
    }),
    { numRuns: 200 },
  );
  t.pass('200 random streams round-trip through the parser');
});

t.test('inputs tried', async (t) => {
  t.ok(tried > 3000, `${tried} random and mutated inputs`);
  t.comment(`property-based inputs tried: ${tried}`);
});
