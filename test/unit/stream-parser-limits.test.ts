/**
 * The migration stream parser's limits (options with defaults) and error codes, and that
 * its work is linear in the bytes received (issue 21, hole 5).
 */
import t from 'tap';
import { performance } from 'node:perf_hooks';
import { StreamParser, PARSER_DEFAULTS } from '../../server/migration/stream-parser.js';
import { StreamErrorCode, StreamFormatError } from '../../server/migration/stream-errors.js';
import { encodeHeader } from '../../server/migration/stream.js';
import { sharedEnd, sharedHead, sharedRange, word, Flag } from '../helpers/hostile-peer.js';

function codeOf(opts: ConstructorParameters<typeof StreamParser>[0], ...parts: Buffer[]): string | null {
  const p = new StreamParser(opts);
  p.push(Buffer.concat([encodeHeader(), ...parts]));
  try {
    while (p.next());
    return null;
  } catch (e) {
    return e instanceof StreamFormatError ? e.code : String(e);
  }
}

t.test('limits refuse with stable codes', async (t) => {
  t.equal(PARSER_DEFAULTS.maxBlobBytes, 16384);
  t.equal(codeOf({ maxPfn: 0x4000 }, sharedHead(), sharedRange(0, 2 ** 32 - 1), sharedEnd()), StreamErrorCode.BAD_RANGE);
  t.equal(codeOf({}, sharedHead(), sharedRange(5, 5), sharedEnd()), StreamErrorCode.BAD_RANGE, 'empty');
  t.equal(codeOf({}, sharedHead(), sharedRange(5, 9), sharedRange(8, 10), sharedEnd()), StreamErrorCode.BAD_RANGE, 'overlapping');
  t.equal(codeOf({ maxSharedRanges: 2 }, sharedHead(), sharedRange(0, 1), sharedRange(1, 2), sharedRange(2, 3), sharedEnd()), StreamErrorCode.TOO_MANY_RANGES);
  t.equal(codeOf({}, sharedHead(), Buffer.from([0, 0, 0, 7])), StreamErrorCode.BAD_TAG);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(4097);
  t.equal(codeOf({ maxBlobBytes: 4096 }, word(0, Flag.DEVICE_STATE), len), StreamErrorCode.BAD_LENGTH);
  t.equal(codeOf({}, word(0, 0x1)), StreamErrorCode.BAD_FLAGS);
  t.equal(codeOf({}, sharedHead(), sharedRange(0, 1), sharedRange(2, 4), sharedEnd()), null, 'a good list');
});

t.test('an unterminated 3 MiB list in 100-byte chunks: linear, handed over in pieces', async (t) => {
  const n = 262144;
  const list = Buffer.alloc(n * 12);
  for (let i = 0; i < n; i++) sharedRange(i, i + 1).copy(list, i * 12);
  const bytes = Buffer.concat([encodeHeader(), sharedHead(), list]);
  const p = new StreamParser();
  let ranges = 0;
  let pieces = 0;
  const t0 = performance.now();
  for (let at = 0; at < bytes.length; at += 100) {
    p.push(bytes.subarray(at, at + 100));
    for (let r = p.next(); r; r = p.next()) {
      if (r.kind === 'shared') ranges += r.ranges.length;
      pieces++;
    }
  }
  const ms = performance.now() - t0;
  t.equal(ranges, n, 'every range as it arrived');
  t.ok(pieces > 1000, `${pieces} pieces`);
  t.ok(ms < 3000, `${ms.toFixed(0)} ms for ${bytes.length} bytes`);
  t.equal(p.buffered, 0, 'nothing kept back');
});
