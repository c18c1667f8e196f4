/**
 * The certificate table of extended guest requests (GHCB spec; go-sev-guest abi.go): entries
 * of {GUID, offset u32, length u32} ended by an all-zero entry, then the certificates.
 */
import { guidFromBytes, guidToBytes } from '../guid.js';

export const CERT_GUID = { VCEK: '63da758d-e664-4564-adc5-f4b93be8accd', ASK: '4ab7b379-bbac-4fe4-a02f-05aef327c782', ARK: 'c0b406a4-a803-4952-9743-3fb6014cd0ae' } as const;
const ENTRY = 24;

export function encodeCertTable(entries: readonly { guid: string; data: Uint8Array }[]): Buffer {
  const head = Buffer.alloc((entries.length + 1) * ENTRY);
  let at = head.length;
  entries.forEach((e, i) => {
    guidToBytes(e.guid).copy(head, i * ENTRY);
    head.writeUInt32LE(at, i * ENTRY + 16);
    head.writeUInt32LE(e.data.length, i * ENTRY + 20);
    at += e.data.length;
  });
  return Buffer.concat([head, ...entries.map((e) => Buffer.from(e.data))]);
}

export function decodeCertTable(raw: Uint8Array): { guid: string; data: Buffer }[] {
  const b = Buffer.from(raw);
  const out: { guid: string; data: Buffer }[] = [];
  for (let at = 0; at + ENTRY <= b.length; at += ENTRY) {
    const offset = b.readUInt32LE(at + 16);
    const length = b.readUInt32LE(at + 20);
    const guid = b.subarray(at, at + 16);
    if (offset === 0 && length === 0 && guid.every((x) => x === 0)) return out;
    if (offset + length > b.length) throw new Error('certificate table entry outside the table');
    out.push({ guid: guidFromBytes(guid), data: Buffer.from(b.subarray(offset, offset + length)) });
  }
  throw new Error('certificate table without its terminating entry');
}
