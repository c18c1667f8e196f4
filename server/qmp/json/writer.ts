/**
 * QMP output: QEMU's compact JSON (qobject/qjson.c, json-writer.c): separators ", " and
 * ": ", members in QDict order, pure-ASCII strings with uppercase \uXXXX escapes, integers
 * in decimal and doubles as C "%.17g". Accepts QObjects (Maps from the parser) and the
 * plain objects command handlers return; `undefined` members are left out.
 */
import { qdictOrder } from './qdict-order.js';

export type OutValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | readonly OutValue[]
  | ReadonlyMap<string, OutValue>
  | { readonly [k: string]: OutValue | undefined };

const SHORT_ESCAPES: Record<number, string> = {
  0x22: '\\"', 0x5c: '\\\\', 0x08: '\\b', 0x0c: '\\f', 0x0a: '\\n', 0x0d: '\\r', 0x09: '\\t',
};

function hex4(n: number): string {
  return n.toString(16).toUpperCase().padStart(4, '0');
}

// eslint-disable-next-line no-control-regex
const NEEDS_ESCAPE = /["\\\u0000-\u001f\u007f-\uffff]/;

export function quoteString(s: string): string {
  if (!NEEDS_ESCAPE.test(s)) return '"' + s + '"';
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const cu = s.charCodeAt(i);
    const short = SHORT_ESCAPES[cu];
    if (short !== undefined) out += short;
    else if (cu < 0x20 || cu >= 0x7f) {
      // A lone surrogate cannot come from valid input; QEMU would print U+FFFD.
      if (cu >= 0xd800 && cu <= 0xdbff) {
        const lo = s.charCodeAt(i + 1);
        if (lo >= 0xdc00 && lo <= 0xdfff) {
          out += '\\u' + hex4(cu) + '\\u' + hex4(lo);
          i++;
          continue;
        }
        out += '\\uFFFD';
      } else if (cu >= 0xdc00 && cu <= 0xdfff) out += '\\uFFFD';
      else out += '\\u' + hex4(cu);
    } else out += s[i];
  }
  return out + '"';
}

/** C printf "%.17g". */
export function formatDouble(x: number): string {
  if (Number.isNaN(x)) return x < 0 ? '-nan' : 'nan';
  if (!Number.isFinite(x)) return x < 0 ? '-inf' : 'inf';
  if (x === 0) return Object.is(x, -0) ? '-0' : '0';
  if (Number.isInteger(x) && Math.abs(x) < 1e17) return String(x);
  const exp = Math.floor(Math.log10(Math.abs(Number(x.toPrecision(17)))));
  if (exp < -4 || exp >= 17) {
    let [mant, e] = x.toExponential(16).split('e') as [string, string];
    if (mant.includes('.')) mant = mant.replace(/0+$/, '').replace(/\.$/, '');
    const en = Number(e);
    return `${mant}e${en < 0 ? '-' : '+'}${String(Math.abs(en)).padStart(2, '0')}`;
  }
  let fixed = x.toFixed(Math.max(0, 16 - exp));
  if (fixed.includes('.')) fixed = fixed.replace(/0+$/, '').replace(/\.$/, '');
  return fixed;
}

export function writeJson(v: OutValue): string {
  if (v === null) return 'null';
  switch (typeof v) {
    case 'string': return quoteString(v);
    case 'boolean': return v ? 'true' : 'false';
    case 'bigint': return v.toString();
    case 'number': return formatDouble(v);
    default: break;
  }
  if (Array.isArray(v)) {
    if (v.length === 0) return '[]';
    let out = '[';
    for (let i = 0; i < v.length; i++) out += (i ? ', ' : '') + writeJson(v[i] as OutValue);
    return out + ']';
  }
  const keys: string[] = [];
  const vals: OutValue[] = [];
  if (v instanceof Map) {
    for (const [k, x] of v as ReadonlyMap<string, OutValue>) {
      keys.push(k);
      vals.push(x);
    }
  } else {
    const o = v as { readonly [k: string]: OutValue | undefined };
    for (const k in o) {
      const x = o[k];
      if (x === undefined) continue;
      keys.push(k);
      vals.push(x);
    }
  }
  if (keys.length === 0) return '{}';
  const order = qdictOrder(keys);
  let out = '{';
  for (let i = 0; i < order.length; i++) {
    const j = order[i]!;
    out += (i ? ', ' : '') + quoteString(keys[j]!) + ': ' + writeJson(vals[j]!);
  }
  return out + '}';
}

/** One QMP message on the wire: JSON text and CRLF. */
export function qmpLine(v: OutValue): string {
  return writeJson(v) + '\r\n';
}
