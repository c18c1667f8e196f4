/**
 * GUEST_SPEC (docs/interface.md §3) after the QAPI visitor: the checks that are not about
 * JSON types (name, memory size, files), turning the spec into a GuestConfig; the files
 * it names are read by spec-files.ts, and handed on as buffers.
 */
import { GUEST_NAME_PATTERN } from '../../schema/control.js';
import { parseMemorySize } from '../guest/layout.js';
import { builtinFirmware } from '../guest/builtin-firmware.js';
import { checkSpecFile, readFirmware, readSpecFile, SpecError } from './spec-files.js';
import { glibBase64Decode, qbase64Decode } from '../util/base64.js';
import type { GuestConfig } from '../guest/guest.js';
import type { Args } from '../dispatch/dispatcher.js';
import type { ConfidentialSpec, SnpSpec } from '../sev/guest-spec-kinds.js';
import { UNCONFINED, type FileAccess } from '../confinement/paths.js';
import { parseMigrationUri } from '../migration/uri.js';
import { CPU_MODELS } from '../../abi/vmsa.js';
import { Policy } from '../../abi/policy.js';

/** vCPUs a guest may have (the VMSA frames hold 256). */
const MAX_SMP = 256;
const DEFAULT_CPU = 'EPYC-v4';
const KNOWN_CPUS = [...Object.keys(CPU_MODELS), 'host'];


const NAME_RE = new RegExp(GUEST_NAME_PATTERN);
const DEFAULT_MEMORY = 512 * 1024 * 1024;


export interface NormalizedSpec {
  config: GuestConfig;
  sev: ConfidentialSpec | null;
}

// Where the spec's errors were always found (the daemon's config errors name the member).
export { SpecError };

const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);

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
  const flash = firmwarePath === null ? null : readFirmware(files, firmwarePath);
  const firmware = flash?.image ?? builtinFirmware();
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
  // The kernel and initrd are opened as QEMU opens them at machine init, for every guest;
  // their content is kept only where it is measured (kernel-hashes).
  const kernel = str(a['kernel']);
  const initrd = str(a['initrd']);
  const measured = (sevArgs ?? snpArgs)?.['kernel-hashes'] === true && kernel !== null;
  const kernelHashes = measured
    ? { kernel: readSpecFile(files, 'kernel', kernel)!, initrd: readSpecFile(files, 'initrd', initrd), append: str(a['append']) }
    : null;
  if (!measured) {
    checkSpecFile(files, 'kernel', kernel);
    checkSpecFile(files, 'initrd', initrd);
  }
  // QEMU reads the session inputs at LAUNCH_START, which an incoming guest never runs.
  const launchInput = (member: 'sev-guest.dh-cert-file' | 'sev-guest.session-file', path: string | null) =>
    incoming === null && path !== null ? glibBase64Decode(readSpecFile(files, member, path)!.toString('latin1')) : null;
  const common = (o: Args) => ({
    cbitpos: (o['cbitpos'] as number | undefined) ?? null,
    reducedPhysBits: (o['reduced-phys-bits'] as number | undefined) ?? null,
    kernelHashes, smp, cpu,
  });
  let sev: ConfidentialSpec | null = null;
  if (sevArgs) {
    const policy = (sevArgs['policy'] as number | undefined) ?? 1;
    sev = {
      ...common(sevArgs),
      kind: policy & Policy.ES ? 'sev-es' : 'sev',
      policy,
      handle: (sevArgs['handle'] as number | undefined) ?? 0,
      godh: launchInput('sev-guest.dh-cert-file', str(sevArgs['dh-cert-file'])),
      session: launchInput('sev-guest.session-file', str(sevArgs['session-file'])),
      // A bool in QEMU 9.1, OnOffAuto from 9.2; auto uses KVM_SEV_INIT2 (Linux Documentation/virt/kvm/x86/amd-memory-encryption.rst, KVM_SEV_INIT2).
      legacyVmType: sevArgs['legacy-vm-type'] === true || sevArgs['legacy-vm-type'] === 'on',
    };
  } else if (snpArgs) {
    sev = { ...common(snpArgs), ...snpSpec(snpArgs, files) };
  }
  const es = sev !== null && sev.kind !== 'sev';
  const spec: NormalizedSpec = {
    config: {
      name,
      memoryBytes,
      firmware,
      firmwarePath,
      kernel,
      initrd,
      append: str(a['append']),
      paused: a['paused'] === true,
      incoming,
      origin: files.origin,
      smp,
      vmsaPages: es ? smp : 0,
      cpu,
      firmwareNodes: (a['firmware-nodes'] as { format: string; storage: string } | undefined) ?? null,
      firmwareAllocated: flash?.allocated ?? 0,
    },
    sev,
  };
  return { spec, persistable: a };
}

/** QEMU's base64 properties (qbase64_decode: strict) with their length rules and texts. */
function b64Prop(o: Args, member: string, rule: (n: number) => string | null): Buffer | null {
  const v = str(o[member]);
  if (v === null) return null;
  const b = qbase64Decode(v);
  if (b === null) throw new SpecError(`sev-snp-guest.${member}`, 'Base64 data is not valid');
  const problem = rule(b.length);
  if (problem) throw new SpecError(`sev-snp-guest.${member}`, problem);
  return b;
}

/** The sev-snp-guest object (docs/interface.md §9; QEMU's defaults: policy 0x30000, everything else off). */
function snpSpec(o: Args, files: FileAccess): Omit<SnpSpec, 'cbitpos' | 'reducedPhysBits' | 'kernelHashes' | 'smp' | 'cpu'> {
  const gosvw = b64Prop(o, 'guest-visible-workarounds', (n) => (n !== 16 ? `parameter length of ${n} exceeds max of 16` : null));
  const idBlock = b64Prop(o, 'id-block', (n) => (n !== 96 ? `parameter length of ${n} not equal to 96` : null));
  const idAuth = b64Prop(o, 'id-auth', (n) => (n > 4096 ? `parameter length:ID_AUTH ${n} exceeds max of 4096` : null));
  const hostData = b64Prop(o, 'host-data', (n) => (n !== 32 ? `parameter length of ${n} not equal to 32` : null));
  const policy = o['policy'];
  return {
    kind: 'sev-snp',
    policy: policy === undefined ? 0x30000n : BigInt(policy as number | bigint),
    gosvw: gosvw ?? Buffer.alloc(16),
    idBlock,
    idAuth: idAuth ? Buffer.concat([idAuth, Buffer.alloc(4096 - idAuth.length)]) : null,
    authorKeyEnabled: o['author-key-enabled'] === true,
    hostData: hostData ?? Buffer.alloc(32),
    vcekDisabled: o['vcek-disabled'] === true,
    certTable: readSpecFile(files, 'sev-snp-guest.certs-filename', str(o['certs-filename'])),
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
