/**
 * GUEST_SPEC (interface.md §3) after the QAPI visitor: the checks that are not about
 * JSON types (name, memory size, files), turning the spec into a GuestConfig.
 */
import { closeSync, fstatSync, readFileSync } from 'node:fs';
import { QmpError } from '../qmp/errors.js';
import { GUEST_NAME_PATTERN } from '../../schema/control.js';
import { parseMemorySize } from '../guest/layout.js';
import { builtinFirmware } from '../guest/builtin-firmware.js';
import { strerror } from '../util/strerror.js';
import type { GuestConfig } from '../guest/guest.js';
import type { Args } from '../dispatch/dispatcher.js';
import type { SevGuestSpec, SnpGuestSpec } from '../sev/sev-guest.js';
import { UNCONFINED, type FileAccess } from '../confinement/paths.js';
import { parseMigrationUri } from '../migration/uri.js';
import { CPU_MODELS } from '../../abi/vmsa.js';
import { Policy } from '../firmware/guest-firmware.js';

/** vCPUs a guest may have (the VMSA frames hold 256). */
const MAX_SMP = 256;
const DEFAULT_CPU = 'EPYC-v4';
const KNOWN_CPUS = [...Object.keys(CPU_MODELS), 'host'];


const NAME_RE = new RegExp(GUEST_NAME_PATTERN);
const DEFAULT_MEMORY = 512 * 1024 * 1024;
/** Flash images larger than this would overlap the PCI hole below 4 GiB. */
const MAX_FIRMWARE = 64 * 1024 * 1024;


export interface NormalizedSpec {
  config: GuestConfig;
  sev: SevGuestSpec | null;
}

/** A spec error names the member it is about (used for config-file paths). */
export class SpecError extends QmpError {
  constructor(readonly member: string, desc: string) {
    super('GenericError', desc);
  }
}

const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);

/**
 * Firmware images are shared by many guests: keep the last few, keyed by the identity of
 * the file actually opened (device, inode, size, mtime, ctime from its descriptor), so
 * that another file met under the same name is never taken for a cached one.
 */
const firmwareCache = new Map<string, Buffer>();

const firmwareSizeError = (path: string, n: number) =>
  new SpecError('firmware', `Firmware image '${path}' must be a non-empty multiple of 4 KiB up to 64 MiB (it has ${n} bytes)`);

function readFirmware(files: FileAccess, path: string): Buffer {
  const fd = files.openForRead('images', path);
  try {
    const st = fstatSync(fd);
    const key = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
    let image = firmwareCache.get(key);
    if (!image) {
      if (st.size > MAX_FIRMWARE) throw firmwareSizeError(path, st.size); // not worth reading
      image = readFileSync(fd);
      if (firmwareCache.size >= 8) firmwareCache.delete(firmwareCache.keys().next().value!);
      firmwareCache.set(key, image);
    }
    return image;
  } finally {
    closeSync(fd);
  }
}

/**
 * Every file name in the spec is checked by `files` before any file is opened, and every
 * file is opened through it (the guest keeps it for the files it reads at launch); the
 * spec is returned with the resolved names (what is persisted, so a restart opens the
 * same files).
 */
export async function normalizeGuestSpec(raw: Args, files: FileAccess = UNCONFINED): Promise<{ spec: NormalizedSpec; persistable: Args }> {
  const a = resolveFileNames(raw, files);
  const name = a['name'] as string;
  if (!NAME_RE.test(name)) {
    throw new SpecError('name', `Invalid guest name '${name}': use 1 to 64 of A-Z a-z 0-9 _ . -`);
  }
  let memoryBytes = DEFAULT_MEMORY;
  if (a['memory'] !== undefined) {
    const m = parseMemorySize(a['memory'] as string | number);
    if (m === undefined || m % 4096 !== 0) {
      throw new SpecError('memory', `Invalid memory size '${String(a['memory'])}': expected bytes (a multiple of 4096) or a number with suffix K, M or G`);
    }
    memoryBytes = m;
  }
  const firmwarePath = str(a['firmware']);
  let firmware: Buffer;
  if (firmwarePath === null) firmware = builtinFirmware();
  else {
    try {
      firmware = readFirmware(files, firmwarePath);
    } catch (e) {
      if (e instanceof QmpError) throw e;
      throw new SpecError('firmware', `Could not load firmware '${firmwarePath}': ${strerror(e)}`);
    }
    if (firmware.length === 0 || firmware.length % 4096 !== 0 || firmware.length > MAX_FIRMWARE) {
      throw firmwareSizeError(firmwarePath, firmware.length);
    }
  }
  const smp = a['smp'] === undefined ? 1 : Number(a['smp']);
  if (!Number.isInteger(smp) || smp < 1 || smp > MAX_SMP) {
    throw new SpecError('smp', `Invalid SMP CPUs ${String(a['smp'])}. The max CPUs supported by machine 'q35' is ${MAX_SMP}`);
  }
  const cpu = str(a['cpu']) ?? DEFAULT_CPU;
  if (!KNOWN_CPUS.includes(cpu)) throw new SpecError('cpu', `unable to find CPU model '${cpu}' (known: ${KNOWN_CPUS.join(', ')})`);
  const incoming = str(a['incoming']);
  if (incoming !== null && !/^(tcp:|unix:|file:|defer$)/.test(incoming)) {
    throw new SpecError('incoming', `Invalid incoming URI '${incoming}': expected tcp:HOST:PORT, unix:PATH, file:PATH or defer`);
  }
  const sevArgs = a['sev-guest'] as Args | undefined;
  const snpArgs = a['sev-snp-guest'] as Args | undefined;
  if (sevArgs && snpArgs) throw new SpecError('sev-snp-guest', "'sev-guest' and 'sev-snp-guest' are mutually exclusive: a guest has one confidential-guest object");
  const common = (o: Args) => ({
    handle: 0, dhCertFile: null, sessionFile: null,
    cbitpos: (o['cbitpos'] as number | undefined) ?? null,
    reducedPhysBits: (o['reduced-phys-bits'] as number | undefined) ?? null,
    kernelHashes: o['kernel-hashes'] === true,
    legacyVmType: false, smp, cpu, snp: null,
  });
  let sev: SevGuestSpec | null = null;
  if (sevArgs) {
    sev = {
      ...common(sevArgs),
      policy: (sevArgs['policy'] as number | undefined) ?? 1,
      handle: (sevArgs['handle'] as number | undefined) ?? 0,
      dhCertFile: str(sevArgs['dh-cert-file']),
      sessionFile: str(sevArgs['session-file']),
      // A bool in QEMU 9.1, OnOffAuto from 9.2; auto uses KVM_SEV_INIT2 (sev-es-snp.md §2).
      legacyVmType: sevArgs['legacy-vm-type'] === true || sevArgs['legacy-vm-type'] === 'on',
    };
  } else if (snpArgs) {
    sev = { ...common(snpArgs), policy: 0, snp: snpSpec(snpArgs) };
  }
  const es = sev !== null && (sev.snp !== null || (sev.policy & Policy.ES) !== 0);
  const spec: NormalizedSpec = {
    config: {
      name,
      memoryBytes,
      firmware,
      firmwarePath,
      files,
      kernel: str(a['kernel']),
      initrd: str(a['initrd']),
      append: str(a['append']),
      paused: a['paused'] === true,
      incoming,
      smp,
      vmsaPages: es ? smp : 0,
      cpu,
      firmwareNodes: (a['firmware-nodes'] as { format: string; storage: string } | undefined) ?? null,
    },
    sev,
  };
  return { spec, persistable: a };
}

/** QEMU's base64 properties (qbase64_decode: strict) with their length rules and texts. */
function b64Prop(o: Args, member: string, rule: (n: number) => string | null): Buffer | null {
  const v = str(o[member]);
  if (v === null) return null;
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(v) || v.length % 4 !== 0) throw new SpecError(`sev-snp-guest.${member}`, 'Base64 data is not valid');
  const b = Buffer.from(v, 'base64');
  const problem = rule(b.length);
  if (problem) throw new SpecError(`sev-snp-guest.${member}`, problem);
  return b;
}

/** The sev-snp-guest object (interface §9; QEMU's defaults: policy 0x30000, everything else off). */
function snpSpec(o: Args): SnpGuestSpec {
  const gosvw = b64Prop(o, 'guest-visible-workarounds', (n) => (n !== 16 ? `parameter length of ${n} exceeds max of 16` : null));
  const idBlock = b64Prop(o, 'id-block', (n) => (n !== 96 ? `parameter length of ${n} not equal to 96` : null));
  const idAuth = b64Prop(o, 'id-auth', (n) => (n > 4096 ? `parameter length:ID_AUTH ${n} exceeds max of 4096` : null));
  const hostData = b64Prop(o, 'host-data', (n) => (n !== 32 ? `parameter length of ${n} not equal to 32` : null));
  const policy = o['policy'];
  return {
    policy: policy === undefined ? 0x30000n : BigInt(policy as number | bigint),
    gosvw: gosvw ?? Buffer.alloc(16),
    idBlock,
    idAuth: idAuth ? Buffer.concat([idAuth, Buffer.alloc(4096 - idAuth.length)]) : null,
    authorKeyEnabled: o['author-key-enabled'] === true,
    hostData: hostData ?? Buffer.alloc(32),
    vcekDisabled: o['vcek-disabled'] === true,
    certsFile: str(o['certs-filename']),
    secureTsc: o['secure-tsc'] === true,
  };
}

/** A copy of the spec with each file name replaced by what `files` makes of it. */
function resolveFileNames(a: Args, files: FileAccess): Args {
  const paths = files.resolve;
  const out: Args = { ...a };
  for (const m of ['firmware', 'kernel', 'initrd'] as const) {
    if (typeof a[m] === 'string') out[m] = paths('images', a[m] as string);
  }
  const incoming = parseMigrationUri(str(a['incoming']) ?? '');
  if (incoming && incoming.kind !== 'tcp') {
    const path = paths('migration', incoming.path);
    if (path !== incoming.path) out['incoming'] = `${incoming.kind}:${path}`;
  }
  for (const obj of ['sev-guest', 'sev-snp-guest'] as const) {
    const sev = a[obj] as Args | undefined;
    if (!sev) continue;
    const s: Args = { ...sev };
    for (const m of ['dh-cert-file', 'session-file', 'certs-filename'] as const) {
      if (typeof sev[m] === 'string') s[m] = paths('inputs', sev[m] as string);
    }
    out[obj] = s;
  }
  return out;
}
