/**
 * The emulated AMD Secure Processor, platform side (SEV API 55766, platform management (INIT, PLATFORM_STATUS, PEK_GEN …)): platform states,
 * the allowed-command table, the platform keys (CEK, OCA, PEK, PDH) and certificates, the
 * platform commands with their status codes and the INVALID_LEN length-query convention.
 */
import type { KeyObject } from 'node:crypto';
import { randomBytes } from 'node:crypto';
import { FirmwareError, FwStatus, type SevCommand } from './status.js';
import {
  Algo, CertFormatError, checkEcKey, decodeSevCert, ecPointFields, encodeSevCert, isSignedBy,
  keyType, sevCertSigner, Usage, SEV_CERT_SIZE, type SevCert,
} from '../../abi/certs/sev-cert.js';
import { deriveFromSeed, deserializeKey, newP384Key, publicOf, serializeKey } from './keys.js';
import { loadEmulatedRoot, type EmulatedRoot, type Generation } from './emulated-root.js';
import { addCekSignature, makeCekCert, makePdhCert, makePekCert, type ApiVersion } from './platform-certs.js';
import { makeOcaCert, unsignedCert } from '../../abi/certs/issue.js';
import { readNvState, StateFileError, writeNvState, type NvState } from './nv-state.js';
import { generationFeatures } from './generations.js';
import { SNP_PRODUCT, SnpPlatform, type SnpInitial, type SnpNv } from './snp-platform.js';

export type PlatformState = 'UNINIT' | 'INIT' | 'WORKING';

export interface PlatformOptions {
  generation: Generation;
  apiMajor: number;
  apiMinor: number;
  build: number;
  seed: string | null;
  stateDir: string;
  /** Where the emulated AMD roots live (tests may point elsewhere). */
  rootsDir?: string;
  /** SNP generations: the TCB and masks of a first start (docs/interface.md §9 `platform.snp`). */
  snp?: SnpInitial;
}

const DEFAULT_SNP: SnpInitial = { tcb: { bootloader: 3, tee: 0, snp: 8, microcode: 115, fmc: null }, reportedTcb: null, maskChipId: false, maskChipKey: false };

/** An output buffer of a firmware command: absent (address 0) or `len` bytes long. */
export type OutBuf = { len: number } | null;

export interface PlatformStatus {
  apiMajor: number;
  apiMinor: number;
  state: PlatformState;
  owner: 'self' | 'external';
  es: boolean;
  build: number;
  guestCount: number;
  /** The 12-byte PLATFORM_STATUS output. */
  raw: Buffer;
}

const STATE_CODE: Record<PlatformState, number> = { UNINIT: 0, INIT: 1, WORKING: 2 };

/** Platform commands allowed in each state (§3.2); everything else is INVALID_PLATFORM_STATE. */
const ALLOWED: Record<PlatformState, ReadonlySet<SevCommand>> = {
  UNINIT: new Set(['INIT', 'FACTORY_RESET', 'PLATFORM_STATUS', 'GET_ID']),
  INIT: new Set(['SHUTDOWN', 'PLATFORM_STATUS', 'PEK_GEN', 'PEK_CSR', 'PEK_CERT_IMPORT', 'PDH_GEN', 'PDH_CERT_EXPORT', 'DF_FLUSH', 'GET_ID']),
  WORKING: new Set(['SHUTDOWN', 'PLATFORM_STATUS', 'PDH_GEN', 'PDH_CERT_EXPORT', 'DF_FLUSH', 'GET_ID']),
};

interface Keys {
  chipId: Buffer;
  seeded: boolean;
  cek: KeyObject;
  cekCert: Buffer;
  oca: KeyObject | null;
  ocaCert: Buffer;
  pek: KeyObject;
  pekCert: Buffer;
  pdh: KeyObject;
  pdhCert: Buffer;
  owner: 'self' | 'external';
}

export class Platform {
  private state: PlatformState = 'UNINIT';
  private keys!: Keys;
  private readonly root: EmulatedRoot;
  readonly api: ApiVersion;
  /** Live guest contexts (the guest side of the firmware keeps this up to date). */
  private contexts = 0;
  /** Listeners told when a SHUTDOWN decommissions every guest context. */
  private readonly shutdownHooks: (() => void)[] = [];
  /** The SNP platform (milan and later), or null. */
  readonly snp: SnpPlatform | null = null;

  constructor(readonly opts: PlatformOptions) {
    this.api = { major: opts.apiMajor, minor: opts.apiMinor };
    this.root = loadEmulatedRoot(opts.generation, opts.rootsDir);
    const saved = readNvState(opts.stateDir);
    if (saved) this.keys = this.fromNv(saved);
    else this.resetIdentity(true);
    const product = SNP_PRODUCT[opts.generation];
    if (product) {
      const chipSecret = () => Buffer.from(this.keys.cek.export({ format: 'jwk' }).d!, 'base64url');
      this.snp = new SnpPlatform(product, chipSecret, (nv) => this.writeNv(this.keys, nv), saved?.snp, opts.snp ?? DEFAULT_SNP);
      // The first SNP start fixes the initial TCB in the NV store with the rest of the identity.
      if (!saved?.snp) this.writeNv(this.keys, this.snp.nv);
    }
  }

  get platformState(): PlatformState {
    return this.state;
  }

  get generation(): Generation {
    return this.opts.generation;
  }

  get emulatedRoot(): EmulatedRoot {
    return this.root;
  }

  /** §3.2: the command is allowed in the current state, or INVALID_PLATFORM_STATE. */
  require(cmd: SevCommand, states?: readonly PlatformState[]): void {
    const ok = states ? states.includes(this.state) : ALLOWED[this.state].has(cmd);
    if (!ok) throw new FirmwareError(cmd, FwStatus.INVALID_PLATFORM_STATE);
  }

  // ---- the guest side of the firmware uses these ----

  contextCreated(): void {
    this.contexts++;
    if (this.state === 'INIT') this.state = 'WORKING';
  }

  contextRemoved(): void {
    this.contexts = Math.max(0, this.contexts - 1);
    if (this.contexts === 0 && this.state === 'WORKING') this.state = 'INIT';
  }

  onShutdown(hook: () => void): void {
    this.shutdownHooks.push(hook);
  }

  /** The PDH private key, for ECDH inside the firmware only. */
  pdhPrivateKey(): KeyObject {
    return this.keys.pdh;
  }

  pekPrivateKey(): KeyObject {
    return this.keys.pek;
  }

  certificates(): { pdh: Buffer; pek: Buffer; oca: Buffer; cek: Buffer } {
    return { pdh: this.keys.pdhCert, pek: this.keys.pekCert, oca: this.keys.ocaCert, cek: this.keys.cekCert };
  }

  // ---- platform commands ----

  init(): void {
    this.require('INIT');
    this.state = 'INIT';
  }

  shutdown(): void {
    this.require('SHUTDOWN');
    for (const h of this.shutdownHooks) h();
    this.contexts = 0;
    this.state = 'UNINIT';
  }

  /** PLATFORM_RESET: deletes the persistent identity (a new OCA, PEK and PDH, owner self). */
  factoryReset(): void {
    this.require('FACTORY_RESET');
    this.resetIdentity(false);
  }

  status(): PlatformStatus {
    const raw = Buffer.alloc(12);
    raw[0] = this.api.major;
    raw[1] = this.api.minor;
    raw[2] = STATE_CODE[this.state];
    raw[3] = this.keys.owner === 'external' ? 1 : 0;
    // CONFIG.ES (the kernel's flags bit 8): SEV-ES is initialised from rome on.
    const es = generationFeatures(this.opts.generation).es;
    raw.writeUInt16LE(es ? 1 : 0, 4);
    raw[7] = this.opts.build;
    raw.writeUInt32LE(this.contexts, 8);
    return {
      apiMajor: this.api.major, apiMinor: this.api.minor, state: this.state, owner: this.keys.owner,
      es, build: this.opts.build, guestCount: this.contexts, raw,
    };
  }

  pekGen(): void {
    this.require('PEK_GEN');
    const oca = newP384Key();
    const pek = newP384Key();
    const pdh = newP384Key();
    this.commit({
      ...this.keys,
      oca, ocaCert: makeOcaCert(oca, this.api),
      pek, pekCert: makePekCert(pek, oca, this.keys.cek, this.api),
      pdh, pdhCert: makePdhCert(pdh, pek, this.api),
      owner: 'self',
    });
  }

  pdhGen(): void {
    this.require('PDH_GEN');
    const pdh = newP384Key();
    this.commit({ ...this.keys, pdh, pdhCert: makePdhCert(pdh, this.keys.pek, this.api) });
  }

  /** The current PEK with both slots empty; len < 2084 or no buffer: INVALID_LEN, len := 2084. */
  pekCsr(out: OutBuf): Buffer {
    this.require('PEK_CSR');
    if (!out || out.len < SEV_CERT_SIZE) throw new FirmwareError('PEK_CSR', FwStatus.INVALID_LEN, { len: SEV_CERT_SIZE });
    return encodeSevCert(unsignedCert(Usage.PEK, Algo.ECDSA_SHA256, this.keys.pek, this.api));
  }

  /** §3.7, in sevd's check order. */
  pekCertImport(pekRaw: Uint8Array, ocaRaw: Uint8Array): void {
    const fail = (s: number): never => {
      throw new FirmwareError('PEK_CERT_IMPORT', s);
    };
    this.require('PEK_CERT_IMPORT');
    if (this.keys.owner === 'external') fail(FwStatus.ALREADY_OWNED);
    if (pekRaw.length !== SEV_CERT_SIZE || ocaRaw.length !== SEV_CERT_SIZE) fail(FwStatus.INVALID_LEN);
    const oca = wellFormed(ocaRaw, Usage.OCA) ?? fail(FwStatus.INVALID_CERTIFICATE);
    const pek = wellFormed(pekRaw, Usage.PEK) ?? fail(FwStatus.INVALID_CERTIFICATE);
    const mine = ecPointFields(publicOf(this.keys.pek));
    if (pek.pubKey.kind !== 'ec' || !pek.pubKey.qx.equals(mine.qx) || !pek.pubKey.qy.equals(mine.qy)) fail(FwStatus.INVALID_CERTIFICATE);
    const ocaSigner = sevCertSigner(oca);
    if (!isSignedBy(ocaRaw, oca, ocaSigner)) fail(FwStatus.BAD_SIGNATURE);
    if (!isSignedBy(pekRaw, pek, ocaSigner)) fail(FwStatus.BAD_SIGNATURE);
    if (pek.sigs[0].usage !== Usage.INVALID && pek.sigs[1].usage !== Usage.INVALID) fail(FwStatus.INVALID_CERTIFICATE);
    const pdh = newP384Key();
    this.commit({
      ...this.keys,
      oca: null, ocaCert: Buffer.from(ocaRaw),
      pekCert: addCekSignature(Buffer.from(pekRaw), this.keys.cek),
      pdh, pdhCert: makePdhCert(pdh, this.keys.pek, this.api),
      owner: 'external',
    });
  }

  /** PDH and PEK ‖ OCA ‖ CEK; either buffer absent or short: INVALID_LEN with both lengths. */
  pdhCertExport(pdhOut: OutBuf, certsOut: OutBuf): { pdh: Buffer; certs: Buffer } {
    this.require('PDH_CERT_EXPORT');
    if (!pdhOut || !certsOut || pdhOut.len < SEV_CERT_SIZE || certsOut.len < 3 * SEV_CERT_SIZE) {
      throw new FirmwareError('PDH_CERT_EXPORT', FwStatus.INVALID_LEN, { pdhLen: SEV_CERT_SIZE, certsLen: 3 * SEV_CERT_SIZE });
    }
    const k = this.keys;
    return { pdh: k.pdhCert, certs: Buffer.concat([k.pekCert, k.ocaCert, k.cekCert]) };
  }

  getId(out: OutBuf): Buffer {
    this.require('GET_ID');
    if (!out || out.len < 64) throw new FirmwareError('GET_ID', FwStatus.INVALID_LEN, { len: 64 });
    return Buffer.from(this.keys.chipId);
  }

  dfFlush(): void {
    this.require('DF_FLUSH');
  }

  // ---- identity and persistence ----

  private resetIdentity(first: boolean): void {
    let chipId: Buffer;
    let cek: KeyObject;
    let cekCert: Buffer;
    if (!first && this.keys) {
      ({ chipId, cek, cekCert } = this.keys); // chip-unique: survives a factory reset
    } else if (this.opts.seed) {
      ({ chipId, cek } = deriveFromSeed(this.opts.seed));
      cekCert = makeCekCert(cek, this.root);
    } else {
      chipId = randomBytes(64);
      cek = newP384Key();
      cekCert = makeCekCert(cek, this.root);
    }
    const oca = newP384Key();
    const pek = newP384Key();
    const pdh = newP384Key();
    this.commit({
      chipId, seeded: this.opts.seed !== null, cek, cekCert,
      oca, ocaCert: makeOcaCert(oca, this.api),
      pek, pekCert: makePekCert(pek, oca, cek, this.api),
      pdh, pdhCert: makePdhCert(pdh, pek, this.api),
      owner: 'self',
    });
  }

  /** Persists first, then switches: a failed write leaves the old identity in force. */
  private commit(k: Keys): void {
    this.writeNv(k, this.snp?.nv);
    this.keys = k;
  }

  private writeNv(k: Keys, snp: SnpNv | undefined): void {
    writeNvState(this.opts.stateDir, {
      generation: this.opts.generation,
      chipId: k.chipId.toString('base64'),
      seeded: k.seeded,
      cekKey: serializeKey(k.cek),
      cekCert: k.cekCert.toString('base64'),
      ocaKey: k.oca ? serializeKey(k.oca) : null,
      ocaCert: k.ocaCert.toString('base64'),
      pekKey: serializeKey(k.pek),
      pekCert: k.pekCert.toString('base64'),
      pdhKey: serializeKey(k.pdh),
      pdhCert: k.pdhCert.toString('base64'),
      owner: k.owner,
      ...(snp ? { snp } : {}),
    });
  }

  private fromNv(s: NvState): Keys {
    if (s.generation !== this.opts.generation) {
      throw new StateFileError(`platform state in ${this.opts.stateDir} belongs to a ${s.generation} chip, but the config says ${this.opts.generation}`);
    }
    try {
      return {
        chipId: Buffer.from(s.chipId, 'base64'), seeded: s.seeded,
        cek: deserializeKey(s.cekKey), cekCert: Buffer.from(s.cekCert, 'base64'),
        oca: s.ocaKey ? deserializeKey(s.ocaKey) : null, ocaCert: Buffer.from(s.ocaCert, 'base64'),
        pek: deserializeKey(s.pekKey), pekCert: Buffer.from(s.pekCert, 'base64'),
        pdh: deserializeKey(s.pdhKey), pdhCert: Buffer.from(s.pdhCert, 'base64'),
        owner: s.owner,
      };
    } catch {
      throw new StateFileError(`platform state in ${this.opts.stateDir} holds an unreadable key`);
    }
  }
}

/** Decodes a certificate and checks usage, ECDSA algorithm and P-384 point; undefined if malformed. */
function wellFormed(raw: Uint8Array, usage: number): SevCert | undefined {
  try {
    const c = decodeSevCert(raw);
    if (c.usage !== usage || keyType(c.algo) !== 2) return undefined;
    checkEcKey(c);
    return c;
  } catch (e) {
    if (e instanceof CertFormatError) return undefined;
    throw e;
  }
}

