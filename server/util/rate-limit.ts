/**
 * A token bucket for work a remote peer can ask for at will (new VCEKs on the KDS
 * endpoint): `rate` events per second on average, `burst` at once. `take()` answers
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
