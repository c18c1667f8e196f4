/**
 * The memory controller's helper thread: encrypts pages in place (AES-128-XTS, tweak =
 * SPA) while the firmware thread measures them. Pages are claimed from a shared counter,
 * and a page is encrypted only after the firmware has hashed its plaintext.
 */
import { parentPort } from 'node:worker_threads';
import { createCipheriv, type KeyObject } from 'node:crypto';
import { tweak } from './xts-tweak.js';

export const CTL_HASHED = 0;
export const CTL_NEXT = 1;
export const CTL_DONE = 2;

export interface EncryptJob {
  key: KeyObject;
  ctl: SharedArrayBuffer;
  /** [slab, byte offset, SPA] per page, in measuring order. */
  pages: [SharedArrayBuffer, number, number][];
}

parentPort?.on('message', (job: EncryptJob) => {
  const ctl = new Int32Array(job.ctl);
  const n = job.pages.length;
  for (;;) {
    const i = Atomics.add(ctl, CTL_NEXT, 1);
    if (i >= n) break;
    for (let h = Atomics.load(ctl, CTL_HASHED); h <= i; h = Atomics.load(ctl, CTL_HASHED)) Atomics.wait(ctl, CTL_HASHED, h, 5);
    const [slab, off, spa] = job.pages[i]!;
    const page = Buffer.from(slab, off, 4096);
    page.set(createCipheriv('aes-128-xts', job.key, tweak(spa)).update(page));
    Atomics.add(ctl, CTL_DONE, 1);
    Atomics.notify(ctl, CTL_DONE);
  }
});
