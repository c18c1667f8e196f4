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

const storage = new AsyncLocalStorage<FaultScope>();

export function currentScope(): FaultScope | undefined {
  return storage.getStore();
}

/** Runs `fn` for `guest`, adding any delay to the enclosing command's. */
export function inGuestScope<T>(guest: string | null, fn: () => T): T {
  const outer = storage.getStore();
  return storage.run({ guest, delay: outer?.delay ?? { ms: 0 } }, fn);
}

/** Waits out the delay collected so far in this scope (and resets it). */
export async function settleDelay(): Promise<void> {
  const s = storage.getStore();
  if (!s || s.delay.ms <= 0) return;
  const ms = s.delay.ms;
  s.delay.ms = 0;
  await new Promise((r) => setTimeout(r, ms));
}
