/**
 * The guest owner's check of an SEV-SNP attestation report: VCEK → ASK → ARK against AMD's
 * real chain for the product (bundled) or a given chain, the report's signature with the
 * VCEK, the VCEK's TCB and hwID against the report, then the owner's expectations. Each
 * check is named, so a refusal says exactly what failed.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { decodeSnpReport, SNP_REPORT_SIZE, verifySnpReportSignature } from '../../abi/snp/report.js';
import { decodeTcb, tcbAtLeast, encodeTcb, type SnpProduct, type Tcb } from '../../abi/snp/tcb.js';
import { hwId, readVcekExtensions, VCEK_PRODUCT_NAME } from '../../abi/snp/vcek.js';

const ROOTS = fileURLToPath(new URL('../../../clients/owner/amd-roots/snp/', import.meta.url));
export const SNP_PRODUCTS: Record<string, SnpProduct> = { milan: 'Milan', genoa: 'Genoa', turin: 'Turin' };

export interface SnpExpectations {
  measurement?: Uint8Array;
  reportData?: Uint8Array;
  hostData?: Uint8Array;
  policy?: bigint;
  minTcb?: Tcb;
}

export interface SnpVerifyOptions {
  /** The product whose chain is trusted (AMD's real chain, bundled) unless `chainPem` is given. */
  product: SnpProduct;
  /** PEM: the ASK then the ARK (what KDS's cert_chain serves). */
  chainPem?: string;
  /** The VCEK (DER); otherwise fetched from `kdsBase` with the report's chip id and reported TCB. */
  vcek?: Uint8Array;
  kdsBase?: string;
  expect?: SnpExpectations;
}

export interface SnpCheck {
  check: string;
  ok: boolean;
  detail?: string;
}

/** The KDS URL of the VCEK that signed a report (chip id and reported TCB from the report). */
export function vcekUrl(base: string, product: SnpProduct, report: Uint8Array): string {
  const r = decodeSnpReport(report);
  const t = decodeTcb(product, r.reportedTcb);
  const q = `blSPL=${t.bootloader}&teeSPL=${t.tee}&snpSPL=${t.snp}&ucodeSPL=${t.microcode}${product === 'Turin' ? `&fmcSPL=${t.fmc ?? 0}` : ''}`;
  return `${base.replace(/\/$/, '')}/vcek/v1/${product}/${hwId(product, r.chipId).toString('hex')}?${q}`;
}

function splitPem(pem: string): X509Certificate[] {
  return (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((c) => new X509Certificate(c));
}

/**
 * The product a chain or a report names, so `--chain` needs no `--generation`: the ARK's
 * subject CN (`ARK-Milan`, … as KDS's cert_chain and sevd's serve it), else a version ≥ 3
 * report's CPUID family/model (SNP ABI 56860, ATTESTATION_REPORT: family 0x19 model 0x0x
 * Milan, 0x1x or 0xAx Genoa; family 0x1A Turin). null: neither tells.
 */
export function snpProductOf(report: Uint8Array, chainPem?: string): SnpProduct | null {
  const ark = chainPem ? splitPem(chainPem)[1] : undefined;
  const cn = ark?.subject.split('\n').find((l) => l.startsWith('CN='))?.slice(3);
  const named = Object.values(SNP_PRODUCTS).find((p) => cn === `ARK-${p}`);
  if (named) return named;
  if (report.length !== SNP_REPORT_SIZE) return null;
  const c = decodeSnpReport(report).cpuid;
  if (c?.family === 0x19 && c.model >> 4 === 0x0) return 'Milan';
  if (c?.family === 0x19 && (c.model >> 4 === 0x1 || c.model >> 4 === 0xa)) return 'Genoa';
  if (c?.family === 0x1a) return 'Turin';
  return null;
}

const sameBytes = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));

export async function verifySnpReport(report: Uint8Array, o: SnpVerifyOptions): Promise<{ ok: boolean; checks: SnpCheck[] }> {
  const checks: SnpCheck[] = [];
  const add = (check: string, ok: boolean, detail?: string) => checks.push({ check, ok, ...(detail ? { detail } : {}) });
  const done = () => ({ ok: checks.every((c) => c.ok), checks });
  if (report.length !== SNP_REPORT_SIZE) {
    add('report format', false, `${report.length} bytes, not ${SNP_REPORT_SIZE}`);
    return done();
  }
  const r = decodeSnpReport(report);
  add('report format', r.version === 2 || r.version === 3, `version ${r.version}`);

  const [ask, ark] = splitPem(o.chainPem ?? readFileSync(`${ROOTS}ask_ark_${o.product.toLowerCase()}.pem`, 'utf8'));
  if (!ask || !ark) {
    add('certificate chain', false, 'need the ASK and the ARK');
    return done();
  }
  add('ARK self-signed', ark.verify(ark.publicKey), ark.subject.split('\n').find((l) => l.startsWith('CN=')));
  add('ASK signed by ARK', ask.verify(ark.publicKey), ask.subject.split('\n').find((l) => l.startsWith('CN=')));

  let vcekDer: Uint8Array;
  if (o.vcek) vcekDer = o.vcek;
  else if (o.kdsBase) {
    const url = vcekUrl(o.kdsBase, o.product, report);
    const res = await fetch(url);
    if (!res.ok) {
      add('VCEK fetched', false, `${url}: HTTP ${res.status}`);
      return done();
    }
    vcekDer = new Uint8Array(await res.arrayBuffer());
    add('VCEK fetched', true, url);
  } else {
    add('VCEK', false, 'give the VCEK or a KDS base URL');
    return done();
  }
  const vcek = new X509Certificate(Buffer.from(vcekDer));
  add('VCEK signed by ASK', vcek.verify(ask.publicKey));
  add('report signed by VCEK', verifySnpReportSignature(report, vcek.publicKey));
  const facts = readVcekExtensions(vcekDer);
  add('VCEK product', facts.productName === VCEK_PRODUCT_NAME[o.product] || facts.productName.startsWith(o.product), facts.productName);
  const reported = decodeTcb(o.product, r.reportedTcb);
  add('VCEK TCB = reported TCB', encodeTcb(o.product, facts.tcb) === r.reportedTcb, `VCEK ${JSON.stringify(facts.tcb)}, report ${JSON.stringify(reported)}`);
  const masked = r.chipId.every((b) => b === 0);
  add('VCEK hwID = chip id', masked || sameBytes(facts.hwId, hwId(o.product, r.chipId)), masked ? 'chip id masked' : undefined);

  const e = o.expect ?? {};
  if (e.measurement) add('measurement', sameBytes(r.measurement, e.measurement), r.measurement.toString('hex'));
  if (e.reportData) {
    const want = Buffer.alloc(64);
    Buffer.from(e.reportData).copy(want);
    add('report data', r.reportData.equals(want));
  }
  if (e.hostData) {
    const want = Buffer.alloc(32);
    Buffer.from(e.hostData).copy(want);
    add('host data', r.hostData.equals(want));
  }
  if (e.policy !== undefined) add('policy', r.policy === e.policy, `0x${r.policy.toString(16)}`);
  if (e.minTcb) add('reported TCB ≥ minimum', tcbAtLeast(o.product, r.reportedTcb, encodeTcb(o.product, e.minTcb)), JSON.stringify(reported));
  return done();
}
