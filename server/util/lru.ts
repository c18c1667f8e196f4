/**
 * A bounded map that forgets the least recently used entry: for caches whose keys a remote
 * peer chooses (a KDS client picks the TCB), so the cache cannot grow with the peer's whim.
 * Map keeps insertion order; a hit re-inserts, so the first key is always the oldest.
 */
export class LruCache<K, V> {
  private readonly map = new Map<K, V>();

  constructor(readonly capacity: number) {
    if (!(capacity >= 1)) throw new RangeError('LruCache capacity must be at least 1');
  }

  get(key: K): V | undefined {
    const v = this.map.get(key);
    if (v !== undefined) {
      this.map.delete(key);
      this.map.set(key, v);
    }
    return v;
  }

  set(key: K, value: V): void {
    this.map.delete(key);
    this.map.set(key, value);
    if (this.map.size > this.capacity) this.map.delete(this.map.keys().next().value as K);
  }

  delete(key: K): void {
    this.map.delete(key);
  }

  get size(): number {
    return this.map.size;
  }
}

/**
 * A token bucket: `rate` events per second on average, `burst` at once. `take()` answers
 * whether one more may happen now, and if not how many ms until one may.
 */
export class RateLimit {
  private tokens: number;
  private last: number;

  constructor(readonly rate: number, readonly burst: number, private readonly now: () => number = () => performance.now()) {
    this.tokens = burst;
    this.last = now();
  }

  take(): { ok: true } | { ok: false; retryMs: number } {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) / 1000) * this.rate);
    this.last = t;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return { ok: true };
    }
    return { ok: false, retryMs: Math.ceil(((1 - this.tokens) / this.rate) * 1000) };
  }
}
