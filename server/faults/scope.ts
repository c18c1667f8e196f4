/**
 * Which guest the firmware is working for, and how much injected delay a command has
 * collected. QMP commands, guest creation and the work they start (a migration's loop)
 * run inside a scope, so a firmware fault can match its guest and the command's reply can
 * wait out the delay without blocking the event loop (other monitors keep answering).
 */
import { AsyncLocalStorage } from 'node:async_hooks';

export interface FaultScope {
  guest: string | null;
  /** Shared with the enclosing scope: nested work adds to the same command's delay. */
  delay: { ms: number };
}

/** One daemon's scopes (its fault registry holds them): another daemon in the process has its own. */
export class FaultScopes {
  private readonly storage = new AsyncLocalStorage<FaultScope>();

  current(): FaultScope | undefined {
    return this.storage.getStore();
  }

  /** Runs `fn` for `guest`, adding any delay to the enclosing command's. */
  inGuest<T>(guest: string | null, fn: () => T): T {
    const outer = this.storage.getStore();
    return this.storage.run({ guest, delay: outer?.delay ?? { ms: 0 } }, fn);
  }

  /**
   * Runs one command of `guest`'s monitor in its scope: firmware faults match the guest, and
   * their delays hold the outcome (a synchronous answer stays synchronous when none fired).
   */
  inCommand<T>(guest: string | null, run: () => T | Promise<T>): T | Promise<T> {
    return this.inGuest(guest, () => {
      let r: T | Promise<T>;
      try {
        r = run();
      } catch (e) {
        if (this.current()!.delay.ms === 0) throw e;
        r = Promise.reject(e);
      }
      if (!(r instanceof Promise) && this.current()!.delay.ms === 0) return r;
      return Promise.resolve(r).then(
        async (v) => {
          await this.settle();
          return v;
        },
        async (e) => {
          await this.settle();
          throw e;
        },
      );
    });
  }

  /** Waits out the delay collected so far in this scope (and resets it). */
  async settle(): Promise<void> {
    const s = this.storage.getStore();
    if (!s || s.delay.ms <= 0) return;
    const ms = s.delay.ms;
    s.delay.ms = 0;
    await new Promise((r) => setTimeout(r, ms));
  }
}
