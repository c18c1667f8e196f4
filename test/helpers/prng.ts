/**
 * A small seeded PRNG (xorshift128+) for bounded adversarial runs: the seed is printed, so
 * a failing run is replayed exactly with `SEVD_FUZZ_SEED=<seed>`.
 */
export class Prng {
  private s0: bigint;
  private s1: bigint;

  constructor(readonly seed: number) {
    this.s0 = BigInt(seed >>> 0) | 0x9e3779b97f4a7c15n;
    this.s1 = (BigInt(seed >>> 0) << 17n) ^ 0xbf58476d1ce4e5b9n;
    for (let i = 0; i < 16; i++) this.next();
  }

  static fromEnv(): Prng {
    const env = process.env['SEVD_FUZZ_SEED'];
    return new Prng(env !== undefined ? Number(env) : Math.floor(Math.random() * 2 ** 31));
  }

  /** 64 random bits. */
  next(): bigint {
    const M = (1n << 64n) - 1n;
    let x = this.s0;
    const y = this.s1;
    this.s0 = y;
    x = (x ^ (x << 23n)) & M;
    this.s1 = x ^ y ^ (x >> 17n) ^ (y >> 26n);
    return (this.s1 + y) & M;
  }

  /** A number in [0, 1). */
  float(): number {
    return Number(this.next() >> 11n) / 2 ** 53;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Number(this.next() % BigInt(n));
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }

  /** A string of `n` characters drawn from `alphabet`. */
  text(n: number, alphabet: string): string {
    let s = '';
    for (let i = 0; i < n; i++) s += alphabet[this.int(alphabet.length)];
    return s;
  }

  /** `b` with a few bytes flipped, cut or grown: a mutation that keeps most of the structure. */
  mutate(b: Buffer): Buffer {
    const out = Buffer.from(b);
    switch (this.int(4)) {
      case 0: for (let k = 1 + this.int(4); k > 0; k--) if (out.length) out[this.int(out.length)] ^= 1 << this.int(8); return out;
      case 1: return out.subarray(0, this.int(out.length + 1));
      case 2: return Buffer.concat([out, this.bytes(1 + this.int(64))]);
      default: if (out.length) out.fill(this.pick([0x00, 0xff, 0x7f, 0x80]), this.int(out.length), this.int(out.length + 1)); return out;
    }
  }
}
