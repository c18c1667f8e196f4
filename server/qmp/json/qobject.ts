/**
 * The values the QMP input side produces, mirroring QEMU's QObject kinds:
 * integers stay exact as bigint (QNUM_I64 / QNUM_U64), literals with a fraction or
 * exponent (and integers beyond 64 bits) are doubles (number), and objects keep their
 * members in text order as a Map, because JavaScript objects reorder integer-like keys.
 */
export type QObject = null | boolean | bigint | number | string | QObject[] | QDict;
export type QDict = Map<string, QObject>;

export function isQDict(v: unknown): v is QDict {
  return v instanceof Map;
}

/** Turns a QObject into plain JSON-like data (for logs and tests); ints become numbers when safe. */
export function toPlain(v: QObject): unknown {
  if (typeof v === 'bigint') {
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
  }
  if (Array.isArray(v)) return v.map(toPlain);
  if (v instanceof Map) {
    const o: Record<string, unknown> = {};
    for (const [k, x] of v) o[k] = toPlain(x);
    return o;
  }
  return v;
}

/** Plain JSON data (JSON.parse output) as a QObject: integral numbers become ints. */
export function fromPlain(v: unknown): QObject {
  if (v === null || typeof v === 'boolean' || typeof v === 'string' || typeof v === 'bigint') return v as QObject;
  if (typeof v === 'number') return Number.isInteger(v) ? BigInt(v) : v;
  if (Array.isArray(v)) return v.map(fromPlain);
  if (typeof v === 'object') {
    const m: QDict = new Map();
    for (const [k, x] of Object.entries(v as object)) if (x !== undefined) m.set(k, fromPlain(x));
    return m;
  }
  throw new TypeError(`not JSON data: ${typeof v}`);
}
