/**
 * A KDS-compatible endpoint (docs/interface.md §11; AMD's Key Distribution Service): the chip's
 * VCEK certificate for any TCB, the X.509 cert_chain (ASK then ARK) and the ARK's CRL.
 * The ARK and ASK are sevd's emulated AMD roots with the same RSA keys as their AMD-format
 * twins; every certificate is RSASSA-PSS SHA-384 (salt 48) with AMD's names and, for the
 * VCEK, AMD's extensions in AMD's encoding. X.509 building is @peculiar/x509's job (over
 * node's WebCrypto); the VCEK key itself comes from the firmware, public half only.
 *
 * The endpoint needs no token and any client picks the TCB (2^32 and more of them), while
 * each new VCEK costs ~20 ms of CPU (HKDF, P-384, an RSA-4096 signature): issued VCEKs are
 * kept in a bounded LRU cache, and new derivations are rate-limited (429 past the limit),
 * so a flood of fresh TCBs costs a bounded share of one core and no memory growth.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { AsnConvert } from '@peculiar/asn1-schema';
import { Certificate } from '@peculiar/asn1-x509';
import { webcrypto, type KeyObject } from 'node:crypto';

type CryptoKey = webcrypto.CryptoKey;
import type { FastifyInstance } from 'fastify';
import type { EmulatedRoot } from '../firmware/emulated-root.js';
import { encodeTcb, type SnpProduct, type Tcb } from '../../abi/snp/tcb.js';
import { hwId, vcekExtensions } from '../../abi/snp/vcek.js';
import { LruCache } from '../util/lru.js';
import { RateLimit } from '../util/rate-limit.js';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
const subtle = webcrypto.subtle;
const PSS = { name: 'RSA-PSS', hash: 'SHA-384' } as const;
const SIGNING = { name: 'RSA-PSS', saltLength: 48 } as const;
const YEAR = 365.25 * 24 * 3600 * 1000;

/**
 * AMD issues VCEKs with serial number 0, which the X.509 builder will not (it substitutes a
 * random one): set it in the TBS and sign that again.
 */
async function withSerialZero(der: ArrayBuffer, askKey: CryptoKey): Promise<Buffer> {
  const cert = AsnConvert.parse(der, Certificate);
  cert.tbsCertificate.serialNumber = new Uint8Array([0]).buffer;
  const tbs = AsnConvert.serialize(cert.tbsCertificate);
  cert.signatureValue = await subtle.sign({ name: 'RSA-PSS', saltLength: 48 }, askKey, tbs);
  return Buffer.from(AsnConvert.serialize(cert));
}

const amdName = (cn: string) => `OU=Engineering, C=US, L=Santa Clara, ST=CA, O=Advanced Micro Devices, CN=${cn}`;

export interface KdsChip {
  product: SnpProduct;
  root: EmulatedRoot;
  chipId(): Buffer;
  /** The VCEK's public key for a TCB (u64), from the firmware. */
  vcekPublicKey(tcb: bigint): KeyObject;
}

/** What KDS clients can make the host spend (config `limits.kdsVcekCache`, `kdsNewVcek*`). */
export interface KdsLimits {
  /** VCEK certificates kept (LRU). */
  cacheSize: number;
  /** New VCEKs issued per second on average, and at once. */
  newVcekPerSecond: number;
  newVcekBurst: number;
}

export class Kds {
  private roots?: Promise<{ ark: x509.X509Certificate; ask: x509.X509Certificate; arkKey: CryptoKey; askKey: CryptoKey; crl: Buffer }>;
  private readonly vceks: LruCache<string, Promise<Buffer>>;
  private readonly issuing: RateLimit;
  /**
   * New VCEKs are issued one at a time, each after a turn of the event loop: ~12 ms of
   * main-thread work each, in pieces joined by already-resolved promises, so twenty issued
   * side by side ran as one 600 ms block (measured) while every monitor waited.
   */
  private issuingQueue: Promise<unknown> = Promise.resolve();

  constructor(private readonly chip: KdsChip, limits: KdsLimits) {
    this.vceks = new LruCache(limits.cacheSize);
    this.issuing = new RateLimit(limits.newVcekPerSecond, limits.newVcekBurst);
  }

  private rsa(key: KeyObject, usage: 'sign' | 'verify'): Promise<CryptoKey> {
    const format = usage === 'sign' ? 'pkcs8' : 'spki';
    return subtle.importKey(format, key.export({ format: 'der', type: format }), PSS, true, [usage]) as Promise<CryptoKey>;
  }

  /** ARK (self-signed) and ASK (by the ARK), 25 years from a fixed date, and the empty CRL. */
  private chain() {
    this.roots ??= (async () => {
      const { root, product } = this.chip;
      if (!root.arkKey) throw new Error(`no emulated ARK key for ${root.generation}`);
      const { createPublicKey } = await import('node:crypto');
      const arkKey = await this.rsa(root.arkKey, 'sign');
      const askKey = await this.rsa(root.askKey, 'sign');
      const notBefore = new Date('2020-10-22T17:23:05Z');
      const notAfter = new Date(notBefore.getTime() + 25 * YEAR);
      const ca = (pathLen?: number) => [
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        new x509.BasicConstraintsExtension(true, pathLen, true),
        new x509.CRLDistributionPointsExtension([`https://kdsintf.amd.com/vcek/v1/${product}/crl`]),
      ];
      const ark = await x509.X509CertificateGenerator.create({
        serialNumber: '01', subject: amdName(`ARK-${product}`), issuer: amdName(`ARK-${product}`), notBefore, notAfter,
        publicKey: await this.rsa(createPublicKey(root.arkKey), 'verify'), signingKey: arkKey, signingAlgorithm: SIGNING, extensions: ca(),
      });
      const ask = await x509.X509CertificateGenerator.create({
        serialNumber: '02', subject: amdName(`SEV-${product}`), issuer: ark.subject, notBefore, notAfter,
        publicKey: await this.rsa(createPublicKey(root.askKey), 'verify'), signingKey: arkKey, signingAlgorithm: SIGNING, extensions: ca(0),
      });
      const crl = await x509.X509CrlGenerator.create({
        issuer: ark.subject, thisUpdate: notBefore, nextUpdate: notAfter, signingKey: arkKey, signingAlgorithm: SIGNING, entries: [],
      });
      return { ark, ask, arkKey, askKey, crl: Buffer.from(crl.rawData) };
    })();
    return this.roots;
  }

  /** PEM: the ASK then the ARK, as KDS's cert_chain. */
  async certChainPem(): Promise<string> {
    const { ark, ask } = await this.chain();
    return `${ask.toString('pem')}\n${ark.toString('pem')}\n`;
  }

  async crl(): Promise<Buffer> {
    return (await this.chain()).crl;
  }

  /**
   * The VCEK certificate (DER) of this chip at `tcb`: serial 0, 7 years, AMD's extensions.
   * A TCB not in the cache while the issuing rate is spent: `{ retryMs }` instead.
   */
  vcek(tcb: Tcb): Promise<Buffer> | { retryMs: number } {
    const { product } = this.chip;
    const value = encodeTcb(product, tcb);
    const key = value.toString(16);
    let cert = this.vceks.get(key);
    if (!cert) {
      const allowed = this.issuing.take();
      if (!allowed.ok) return { retryMs: allowed.retryMs };
      const previous = this.issuingQueue;
      cert = (async () => {
        await previous.catch(() => undefined);
        await new Promise((r) => setImmediate(r));
        const { ask, askKey } = await this.chain();
        const spki = this.chip.vcekPublicKey(value).export({ format: 'der', type: 'spki' });
        const publicKey = await subtle.importKey('spki', spki, { name: 'ECDSA', namedCurve: 'P-384' }, true, ['verify']);
        const notBefore = new Date(Math.floor(Date.now() / 86400000) * 86400000);
        const c = await x509.X509CertificateGenerator.create({
          serialNumber: '00', subject: amdName('SEV-VCEK'), issuer: ask.subject, notBefore, notAfter: new Date(notBefore.getTime() + 7 * YEAR),
          publicKey: publicKey as CryptoKey, signingKey: askKey, signingAlgorithm: SIGNING,
          extensions: vcekExtensions(product, tcb, this.chip.chipId()).map(([oid, v]) => new x509.Extension(oid, false, v)),
        });
        return withSerialZero(c.rawData, askKey);
      })();
      this.issuingQueue = cert;
      cert.catch(() => this.vceks.delete(key));
      this.vceks.set(key, cert);
    }
    return cert;
  }

  /** /vcek/v1/{product}/{hwid}?…, /cert_chain, /crl on the HTTP listener; no token (public data). */
  register(app: FastifyInstance): void {
    const { product } = this.chip;
    const spl = (q: Record<string, string | undefined>, k: string) => {
      const v = q[k];
      return v !== undefined && /^\d{1,3}$/.test(v) && Number(v) <= 255 ? Number(v) : undefined;
    };
    app.get('/vcek/v1/:product/cert_chain', async (req, reply) => {
      if ((req.params as { product: string }).product !== product) return reply.code(404).send();
      return reply.type('application/x-pem-file').send(await this.certChainPem());
    });
    app.get('/vcek/v1/:product/crl', async (req, reply) => {
      if ((req.params as { product: string }).product !== product) return reply.code(404).send();
      return reply.type('application/pkix-crl').send(await this.crl());
    });
    app.get('/vcek/v1/:product/:hwid', async (req, reply) => {
      const p = req.params as { product: string; hwid: string };
      if (p.product !== product || p.hwid.toLowerCase() !== hwId(product, this.chip.chipId()).toString('hex')) return reply.code(404).send();
      const q = req.query as Record<string, string | undefined>;
      const tcb = { bootloader: spl(q, 'blSPL'), tee: spl(q, 'teeSPL'), snp: spl(q, 'snpSPL'), microcode: spl(q, 'ucodeSPL'), fmc: product === 'Turin' ? spl(q, 'fmcSPL') : 0 };
      if (Object.values(tcb).some((v) => v === undefined)) return reply.code(400).type('text/plain').send('blSPL, teeSPL, snpSPL and ucodeSPL (and fmcSPL on Turin) are required, 0-255\n');
      const cert = this.vcek(tcb as Tcb);
      if (!(cert instanceof Promise)) {
        return reply.code(429).header('retry-after', String(Math.ceil(cert.retryMs / 1000))).type('text/plain').send('Too many new VCEKs requested; retry later\n');
      }
      return reply.type('application/pkix-cert').send(await cert);
    });
  }
}
