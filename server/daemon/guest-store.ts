/**
 * Guest definitions added with guest-add survive a crash or restart (written atomically on
 * every change). After a restart they come back as a rebooted host would have them: defined,
 * paused in prelaunch with a fresh launch, their old memory and keys gone.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../util/atomic-file.js';

const FILE = 'guests.json';
const FORMAT = 'sevd-guests/1';

export class GuestStore {
  private readonly specs = new Map<string, Record<string, unknown>>();
  private readonly path: string;

  constructor(stateDir: string) {
    this.path = join(stateDir, FILE);
    if (!existsSync(this.path)) return;
    let doc: { format?: string; guests?: Record<string, unknown>[] };
    try {
      doc = JSON.parse(readFileSync(this.path, 'utf8'));
    } catch (e) {
      throw new Error(`guest definitions ${this.path} are damaged (${(e as Error).message})`);
    }
    if (doc.format !== FORMAT || !Array.isArray(doc.guests)) throw new Error(`guest definitions ${this.path} are damaged (unknown format)`);
    for (const g of doc.guests) this.specs.set(String(g['name']), g);
  }

  list(): Record<string, unknown>[] {
    return [...this.specs.values()];
  }

  put(spec: Record<string, unknown>): void {
    this.specs.set(String(spec['name']), spec);
    this.save();
  }

  remove(name: string): void {
    if (this.specs.delete(name)) this.save();
  }

  private save(): void {
    const text = JSON.stringify({ format: FORMAT, guests: [...this.specs.values()] }, (_k, v) => (typeof v === 'bigint' ? Number(v) : v), 1);
    writeFileAtomic(this.path, text + '\n');
  }
}
