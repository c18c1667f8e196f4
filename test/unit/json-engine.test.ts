/** The QMP JSON engine: lexer/streamer/parser behaviour under chunking, errors and limits, and the writer. */
import t from 'tap';
import { JsonStreamer, type StreamItem, type StreamerLimits } from '../../server/qmp/json/streamer.js';
import { formatDouble, quoteString, writeJson } from '../../server/qmp/json/writer.js';
import { qdictHash, qdictBucket } from '../../server/qmp/json/qdict-order.js';
import { toPlain } from '../../server/qmp/json/qobject.js';

function parseAll(input: string | Buffer, chunkSize = Infinity, limits: StreamerLimits = {}): StreamItem[] {
  const out: StreamItem[] = [];
  const s = new JsonStreamer((i) => out.push(i), limits);
  const buf = typeof input === 'string' ? Buffer.from(input, 'utf8') : input;
  for (let i = 0; i < buf.length; i += Math.min(chunkSize, buf.length)) s.feed(buf.subarray(i, i + chunkSize));
  return out;
}

t.test('one message split at every byte boundary parses the same', async (t) => {
  const msg = `{"execute":"x","arguments":{"a":[1,-2.5e3,"\\u00e9\\ud83d\\ude00",true,null],'b':'q"'},"id":18446744073709551615}`;
  const whole = parseAll(msg);
  t.equal(whole.length, 1);
  for (const size of [1, 2, 3, 7, 13]) t.same(parseAll(msg, size), whole, `chunk size ${size}`);
  t.same(toPlain(whole[0]!.value!), {
    execute: 'x', arguments: { a: [1, -2500, 'é😀', true, null], b: 'q"' }, id: '18446744073709551615',
  });
});

t.test('several messages in one chunk', async (t) => {
  const items = parseAll('{"a":1}{"b":2} [3] "s" 4 ');
  t.same(items.map((i) => toPlain(i.value!)), [{ a: 1 }, { b: 2 }, [3], 's', 4]);
});

t.test('integers stay exact, doubles are doubles', async (t) => {
  const [i] = parseAll('[9223372036854775807,-9223372036854775808,18446744073709551615,18446744073709551616,1.0,-0]');
  t.same(i!.value, [9223372036854775807n, -9223372036854775808n, 18446744073709551615n, 18446744073709551616, 1, 0n]);
});

const errorCases: [string, string | Buffer, string[]][] = [
  ['expecting value', '{"a": }', ['JSON parse error, expecting value']],
  ['key not a string', '{1:2}', ['JSON parse error, key is not a string in object']],
  ['missing colon', '{"a" 1}', ['JSON parse error, missing : in object pair']],
  ['dict separator', '{"a":1 "b":2}', ['JSON parse error, expected separator in dict']],
  ['list separator', '[1 2]', ['JSON parse error, expected separator in list']],
  ['duplicate key', '{"a":1,"a":2}', ['JSON parse error, duplicate key']],
  ['keyword', 'nul ', ["JSON parse error, invalid keyword 'nul'"]],
  ['escape', '"\\x"', ['JSON parse error, invalid escape sequence in string']],
  ['surrogate', '"\\uDC00"', ['JSON parse error, \\uDC00 is not a valid Unicode character']],
  ['utf8', Buffer.from([0x22, 0xed, 0xa0, 0x80, 0x22]), ['JSON parse error, invalid UTF-8 sequence in string']],
  ['stray', '@', ["JSON parse error, stray '@'"]],
  ['stray keeps token', '01', ["JSON parse error, stray '01'"]],
  ['stray with NUL truncates', Buffer.from([0x22, 0x61, 0x00]), ["JSON parse error, stray '\"a'"]],
  ['recovery skips until a structural byte', '@ abc def {"a":1}', ["JSON parse error, stray '@'"]],
  ['brace counter never ends a bracket', '[}]', ['JSON parse error, expecting value']],
];
for (const [name, input, want] of errorCases) {
  t.test(`error: ${name}`, async (t) => {
    const items = parseAll(input);
    t.same(items.filter((i) => i.error).map((i) => i.error), want);
  });
}

t.test('a bad message does not desynchronise the stream', async (t) => {
  const items = parseAll('{"a":}{"b":1}');
  t.equal(items[0]!.error, 'JSON parse error, expecting value');
  t.same(toPlain(items[1]!.value!), { b: 1 });
});

t.test('nesting limit: 1024 accepted, 1025 rejected (QEMU default)', async (t) => {
  const ok = parseAll('['.repeat(1024) + ']'.repeat(1024));
  t.equal(ok.length, 1);
  t.notOk(ok[0]!.error);
  const bad = parseAll('['.repeat(1025) + ']'.repeat(1025));
  t.equal(bad[0]!.error, 'JSON nesting depth limit exceeded');
  t.equal(bad.length, 1 + 1025, 'every stray closer is its own error afterwards');
});

t.test('token count and size limits are options', async (t) => {
  const count = parseAll('[1,2,3,4,5]', Infinity, { maxTokens: 5 });
  t.equal(count[0]!.error, 'JSON token count limit exceeded');
  const size = parseAll('["aaaaaaaaaaaaaaaaaaaa"]', Infinity, { maxTokenBytes: 16 });
  t.equal(size[0]!.error, 'JSON token size limit exceeded');
});

t.test('writer: QEMU separators, escapes, member order', async (t) => {
  t.equal(writeJson({ return: {}, id: 1n }), '{"return": {}, "id": 1}');
  t.equal(writeJson({ id: 'x', error: { class: 'GenericError', desc: 'd' } }), '{"id": "x", "error": {"class": "GenericError", "desc": "d"}}');
  t.equal(writeJson([1, [], {}]), '[1, [], {}]');
  t.equal(quoteString('a"\\\b\f\n\r\t\u0001\u007f/é😀'), '"a\\"\\\\\\b\\f\\n\\r\\t\\u0001\\u007F/\\u00E9\\uD83D\\uDE00"');
  t.equal(writeJson({ running: false, singlestep: false, status: 'prelaunch' }), '{"status": "prelaunch", "singlestep": false, "running": false}');
});

t.test('writer: %.17g doubles', async (t) => {
  const cases: [number, string][] = [[0.1, '0.10000000000000001'], [1, '1'], [1e20, '1e+20'], [-0, '-0'], [2.5e-7, '2.4999999999999999e-07'], [123.456, '123.456'], [1e16, '10000000000000000'], [1e17, '1e+17']];
  for (const [x, s] of cases) t.equal(formatDouble(x), s, String(x));
});

t.test('QDict hash matches the reference values', async (t) => {
  t.equal(qdictHash('execute'), 0x54b7b52b);
  t.equal(qdictBucket('execute'), 299);
  t.equal(qdictHash('a'), 0x094a72e9);
  t.equal(qdictHash('abc'), 0xc225adf3);
  t.equal(qdictHash('query-sev'), 0xa7bc417f);
});
