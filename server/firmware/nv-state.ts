/**
 * The firmware's non-volatile state in the state directory: replaced all-or-nothing
 * (util/state-file.ts) with a checksum, so a crash at any point
 * leaves either the old or the new identity, and a damaged file is an error at start-up,
 * never a silent new identity.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { replaceStateFile } from '../util/state-file.js';
import { stateIo } from '../util/state-io.js';
import type { SnpNv } from './snp-platform.js';

export const STATE_FILE = 'platform.json';
const FORMAT = 'sevd-platform-state/1';

export class StateFileError extends Error {}

export interface NvState {
  generation: string;
  chipId: string; // base64
  seeded: boolean;
  cekKey: string;
  cekCert: string;
  ocaKey: string | null; // null when externally owned
  ocaCert: string;
  pekKey: string;
  pekCert: string;
  pdhKey: string;
  pdhCert: string;
  owner: 'self' | 'external';
  /** SNP generations: TCBs and masks (absent before the first SNP start). */
  snp?: SnpNv;
}

const checksum = (body: string) => createHash('sha256').update(body).digest('hex');

export function readNvState(stateDir: string): NvState | undefined {
  const path = join(stateDir, STATE_FILE);
  const text = stateIo.read(path);
  if (text === undefined) return undefined;
  let doc: { format?: string; checksum?: string; state?: NvState };
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new StateFileError(`platform state ${path} is damaged (not JSON: ${(e as Error).message}); refusing to start with a new identity — restore it or remove it deliberately`);
  }
  if (doc.format !== FORMAT || !doc.state || doc.checksum !== checksum(JSON.stringify(doc.state))) {
    throw new StateFileError(`platform state ${path} is damaged (format or checksum mismatch); refusing to start with a new identity — restore it or remove it deliberately`);
  }
  return doc.state;
}

/** Throws PersistError (and leaves the old file) when the write fails. */
export function writeNvState(stateDir: string, state: NvState): void {
  const text = JSON.stringify({ format: FORMAT, checksum: checksum(JSON.stringify(state)), state }, null, 1) + '\n';
  replaceStateFile(join(stateDir, STATE_FILE), text);
}
