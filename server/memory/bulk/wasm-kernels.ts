/**
 * Three small WebAssembly kernels for batched page crypto, emitted as bytes at start-up (no
 * toolchain, no binary blob in the tree). node:crypto does the AES (AES-NI, one ECB call per
 * batch); these do the per-byte work around it that JavaScript does slowly:
 *
 * - `xts_masks(t0, out, n)`: for n encrypted tweaks T (16 bytes each at t0), the 256 XTS masks
 *   T·α^j of a 4 KiB data unit (IEEE 1619 multiplication by x in GF(2^128), little-endian).
 * - `xor(dst, a, b, len)`: dst = a ⊕ b, len a multiple of 16 (v128 lanes).
 * - `ctr_blocks(iv, out, n)`: the n counter blocks IV, IV+1, … of AES-CTR as OpenSSL counts
 *   them (the whole 16-byte block is one big-endian counter).
 */

const uleb = (v: number): number[] => {
  const out: number[] = [];
  do {
    let b = v & 0x7f;
    v >>>= 7;
    if (v) b |= 0x80;
    out.push(b);
  } while (v);
  return out;
};

const sleb = (v: number): number[] => {
  const out: number[] = [];
  for (;;) {
    const b = v & 0x7f;
    v >>= 7;
    if ((v === 0 && !(b & 0x40)) || (v === -1 && b & 0x40)) return [...out, b];
    out.push(b | 0x80);
  }
};

const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];
const name = (s: string): number[] => [...uleb(s.length), ...Buffer.from(s, 'utf8')];

const I32 = 0x7f;
const I64 = 0x7e;
const V128 = 0x7b;

/** The opcodes used below (WebAssembly core 2.0; SIMD ones follow the 0xfd prefix). */
const op = {
  block: [0x02, 0x40], loop: [0x03, 0x40], end: [0x0b], br: (d: number) => [0x0c, d], brIf: (d: number) => [0x0d, d],
  get: (i: number) => [0x20, i], set: (i: number) => [0x21, i], tee: (i: number) => [0x22, i],
  i32: (v: number) => [0x41, ...sleb(v)], i64: (v: number) => [0x42, ...sleb(v)],
  i64Load: (off: number) => [0x29, 3, off], i64Store: (off: number) => [0x37, 3, off],
  i32Eqz: [0x45], i32LtU: [0x49], i32GeU: [0x4f], i32Add: [0x6a], i32Shl: [0x74],
  i64Eqz: [0x50], i64Add: [0x7c], i64Mul: [0x7e], i64Or: [0x84], i64Xor: [0x85], i64Shl: [0x86], i64ShrU: [0x88],
  i64ExtendI32U: [0xad],
  v128Load: [0xfd, 0x00, 4, 0], v128Store: [0xfd, 0x0b, 4, 0], v128Xor: [0xfd, 0x51],
  /** i8x16.shuffle with lanes 15..0 of the first operand: reverses the 16 bytes. */
  reverse: [0xfd, 0x0d, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
  i64x2Splat: [0xfd, 0x12], i64x2Extract: (l: number) => [0xfd, 0x1d, l], i64x2Replace: (l: number) => [0xfd, 0x1e, l],
};

const body = (locals: [number, number][], code: number[][]): number[] => {
  const b = [...vec(locals.map(([n, t]) => [...uleb(n), t])), ...code.flat(), ...op.end];
  return [...uleb(b.length), ...b];
};

// xts_masks(t0, out, n); locals: lo 3, hi 4 (i64), end 5, pageEnd 6 (i32), carry 7 (i64)
const xtsMasks = body([[2, I64], [2, I32], [1, I64]], [
  op.get(0), op.get(2), op.i32(4), op.i32Shl, op.i32Add, op.set(5),
  op.block, op.loop,
  op.get(0), op.get(5), op.i32GeU, op.brIf(1),
  op.get(0), op.i64Load(0), op.set(3),
  op.get(0), op.i64Load(8), op.set(4),
  op.get(1), op.i32(4096), op.i32Add, op.set(6),
  op.loop,
  op.get(1), op.get(3), op.i64Store(0),
  op.get(1), op.get(4), op.i64Store(8),
  op.get(4), op.i64(63), op.i64ShrU, op.set(7),
  op.get(4), op.i64(1), op.i64Shl, op.get(3), op.i64(63), op.i64ShrU, op.i64Or, op.set(4),
  op.get(3), op.i64(1), op.i64Shl, op.get(7), op.i64(0x87), op.i64Mul, op.i64Xor, op.set(3),
  op.get(1), op.i32(16), op.i32Add, op.tee(1), op.get(6), op.i32LtU, op.brIf(0),
  op.end,
  op.get(0), op.i32(16), op.i32Add, op.set(0),
  op.br(0),
  op.end, op.end,
]);

// xor(dst, a, b, len); local: end 4
const xor = body([[1, I32]], [
  op.block,
  op.get(3), op.i32Eqz, op.brIf(0),
  op.get(0), op.get(3), op.i32Add, op.set(4),
  op.loop,
  op.get(0), op.get(1), op.v128Load, op.get(2), op.v128Load, op.v128Xor, op.v128Store,
  op.get(1), op.i32(16), op.i32Add, op.set(1),
  op.get(2), op.i32(16), op.i32Add, op.set(2),
  op.get(0), op.i32(16), op.i32Add, op.tee(0), op.get(4), op.i32LtU, op.brIf(0),
  op.end, op.end,
]);

// ctr_blocks(iv, out, n); locals: lo 3, hi 4 (i64), end 5 (i32), v 6 (v128)
const ctrBlocks = body([[2, I64], [1, I32], [1, V128]], [
  op.get(0), op.v128Load, op.get(0), op.v128Load, op.reverse, op.set(6),
  op.get(6), op.i64x2Extract(0), op.set(3),
  op.get(6), op.i64x2Extract(1), op.set(4),
  op.get(1), op.get(2), op.i32(4), op.i32Shl, op.i32Add, op.set(5),
  op.block,
  op.get(2), op.i32Eqz, op.brIf(0),
  op.loop,
  op.get(1),
  op.get(3), op.i64x2Splat, op.get(4), op.i64x2Replace(1), op.tee(6), op.get(6), op.reverse,
  op.v128Store,
  op.get(3), op.i64(1), op.i64Add, op.tee(3), op.i64Eqz, op.i64ExtendI32U, op.get(4), op.i64Add, op.set(4),
  op.get(1), op.i32(16), op.i32Add, op.tee(1), op.get(5), op.i32LtU, op.brIf(0),
  op.end, op.end,
]);

function moduleBytes(): Uint8Array {
  const t3 = [0x60, ...vec([[I32], [I32], [I32]]), 0];
  const t4 = [0x60, ...vec([[I32], [I32], [I32], [I32]]), 0];
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec([t3, t4])),
    ...section(2, vec([[...name('env'), ...name('mem'), 0x02, 0x00, 0x01]])),
    ...section(3, vec([[0], [1], [0]])),
    ...section(7, vec([[...name('xts_masks'), 0x00, 0], [...name('xor'), 0x00, 1], [...name('ctr_blocks'), 0x00, 2]])),
    ...section(10, [...uleb(3), ...xtsMasks, ...xor, ...ctrBlocks]),
  ]);
}

export interface Kernels {
  xts_masks(t0: number, out: number, n: number): void;
  xor(dst: number, a: number, b: number, len: number): void;
  ctr_blocks(iv: number, out: number, n: number): void;
}

/** The part of the WebAssembly global used here (@types/node 20 does not declare it). */
interface Wasm {
  Memory: new (d: { initial: number }) => WasmMemory;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (m: object, imports: object) => { exports: unknown };
}
export interface WasmMemory {
  readonly buffer: ArrayBuffer;
}
const wasm = (globalThis as unknown as { WebAssembly: Wasm }).WebAssembly;

let compiled: object | undefined;

/** A memory of `bytes` (rounded up to 64 KiB pages) and the kernels over it (compiled once per process). */
export function instantiateKernels(bytes: number): { kernels: Kernels; memory: WasmMemory } {
  const memory = new wasm.Memory({ initial: Math.ceil(bytes / 65536) });
  compiled ??= new wasm.Module(moduleBytes());
  return { kernels: new wasm.Instance(compiled, { env: { mem: memory } }).exports as Kernels, memory };
}
