/**
 * Guest definitions added with guest-add survive a crash or restart. Each change is
 * written all-or-nothing before it takes effect in memory: a failed write throws
 * PersistError and leaves both the file and the remembered set as they were. After a
 * restart the guests come back as a rebooted host would have them: defined, paused in
 * prelaunch with a fresh launch, their old memory and keys gone.
 */
import { join } from 'node:path';
import { replaceStateFile } from '../util/state-file.js';
import { stateIo } from '../util/state-io.js';

export const GUESTS_FILE = 'guests.json';
const FORMAT = 'sevd-guests/1';

type Spec = Record<string, unknown>;

export class GuestStore {
  private specs = new Map<string, Spec>();
  private readonly path: string;

  constructor(stateDir: string) {
    this.path = join(stateDir, GUESTS_FILE);
    const text = stateIo.read(this.path);
    if (text === undefined) return;
    let doc: { format?: string; guests?: Spec[] };
    try {
      doc = JSON.parse(text);
    } catch (e) {
      throw new Error(`guest definitions ${this.path} are damaged (${(e as Error).message})`);
    }
    if (doc.format !== FORMAT || !Array.isArray(doc.guests)) throw new Error(`guest definitions ${this.path} are damaged (unknown format)`);
    for (const g of doc.guests) this.specs.set(String(g['name']), g);
  }

  list(): Spec[] {
    return [...this.specs.values()];
  }

  has(name: string): boolean {
    return this.specs.has(name);
  }

  put(spec: Spec): void {
    this.commit(new Map(this.specs).set(String(spec['name']), spec));
  }

  remove(name: string): void {
    if (!this.specs.has(name)) return;
    const next = new Map(this.specs);
    next.delete(name);
    this.commit(next);
  }

  private commit(next: Map<string, Spec>): void {
    const text = JSON.stringify({ format: FORMAT, guests: [...next.values()] }, (_k, v) => (typeof v === 'bigint' ? Number(v) : v), 1);
    replaceStateFile(this.path, text + '\n');
    this.specs = next;
  }
}
