/**
 * AMD's VCEK certificate extensions (OIDs under 1.3.6.1.4.1.3704.1; go-sev-guest kds.go),
 * encoded exactly as AMD's KDS encodes them: struct version and the SPLs as DER INTEGERs,
 * the product name as an IA5String, the hwID as the raw chip-id bytes (64, or 8 on Turin).
 */
import { certificateExtensions, decodeIa5String, decodeInteger, encodeIa5String, encodeInteger } from '../der.js';
import type { SnpProduct, Tcb } from './tcb.js';

export const VCEK_OID = {
  structVersion: '1.3.6.1.4.1.3704.1.1',
  productName: '1.3.6.1.4.1.3704.1.2',
  blSpl: '1.3.6.1.4.1.3704.1.3.1',
  teeSpl: '1.3.6.1.4.1.3704.1.3.2',
  snpSpl: '1.3.6.1.4.1.3704.1.3.3',
  spl4: '1.3.6.1.4.1.3704.1.3.4',
  spl5: '1.3.6.1.4.1.3704.1.3.5',
  spl6: '1.3.6.1.4.1.3704.1.3.6',
  spl7: '1.3.6.1.4.1.3704.1.3.7',
  ucodeSpl: '1.3.6.1.4.1.3704.1.3.8',
  fmcSpl: '1.3.6.1.4.1.3704.1.3.9',
  hwId: '1.3.6.1.4.1.3704.1.4',
} as const;

/** The product name a VCEK carries (KDS's `<product>-<stepping>`; Turin's says just Turin). */
export const VCEK_PRODUCT_NAME: Record<SnpProduct, string> = { Milan: 'Milan-B0', Genoa: 'Genoa-B1', Turin: 'Turin' };

/** How KDS names a chip: the hex of the whole chip id, or of its first 8 bytes on Turin. */
export function hwId(product: SnpProduct, chipId: Uint8Array): Buffer {
  return Buffer.from(product === 'Turin' ? chipId.subarray(0, 8) : chipId);
}

/** The extensions in AMD's order for the product: [OID, DER value]. */
export function vcekExtensions(product: SnpProduct, tcb: Tcb, chipId: Uint8Array): [string, Buffer][] {
  const int = encodeInteger;
  if (product === 'Turin') {
    return [
      [VCEK_OID.structVersion, int(1)], [VCEK_OID.productName, encodeIa5String(VCEK_PRODUCT_NAME.Turin)],
      [VCEK_OID.fmcSpl, int(tcb.fmc ?? 0)], [VCEK_OID.blSpl, int(tcb.bootloader)], [VCEK_OID.teeSpl, int(tcb.tee)], [VCEK_OID.snpSpl, int(tcb.snp)],
      [VCEK_OID.spl5, int(0)], [VCEK_OID.spl6, int(0)], [VCEK_OID.spl7, int(0)], [VCEK_OID.ucodeSpl, int(tcb.microcode)],
      [VCEK_OID.hwId, hwId(product, chipId)],
    ];
  }
  return [
    [VCEK_OID.structVersion, int(0)], [VCEK_OID.productName, encodeIa5String(VCEK_PRODUCT_NAME[product])],
    [VCEK_OID.blSpl, int(tcb.bootloader)], [VCEK_OID.teeSpl, int(tcb.tee)],
    [VCEK_OID.spl4, int(0)], [VCEK_OID.spl5, int(0)], [VCEK_OID.spl6, int(0)], [VCEK_OID.spl7, int(0)],
    [VCEK_OID.snpSpl, int(tcb.snp)], [VCEK_OID.ucodeSpl, int(tcb.microcode)],
    [VCEK_OID.hwId, hwId(product, chipId)],
  ];
}

export interface VcekFacts {
  structVersion: number;
  productName: string;
  tcb: Tcb;
  hwId: Buffer;
}

/** Reads the AMD extensions of a VCEK certificate (DER). */
export function readVcekExtensions(der: Uint8Array): VcekFacts {
  const ext = certificateExtensions(der);
  const need = (oid: string) => {
    const v = ext.get(oid);
    if (!v) throw new Error(`VCEK extension ${oid} is missing`);
    return v;
  };
  const fmc = ext.get(VCEK_OID.fmcSpl);
  return {
    structVersion: decodeInteger(need(VCEK_OID.structVersion)),
    productName: decodeIa5String(need(VCEK_OID.productName)),
    tcb: {
      bootloader: decodeInteger(need(VCEK_OID.blSpl)), tee: decodeInteger(need(VCEK_OID.teeSpl)),
      snp: decodeInteger(need(VCEK_OID.snpSpl)), microcode: decodeInteger(need(VCEK_OID.ucodeSpl)),
      ...(fmc ? { fmc: decodeInteger(fmc) } : {}),
    },
    hwId: Buffer.from(need(VCEK_OID.hwId)),
  };
}
