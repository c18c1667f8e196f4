/**
 * The QEMU command line libvirt 9.0 builds for x86 q35 domains (and for its capability
 * probe), parsed as qemu-system-x86_64 parses it: QEMU's option table (which take an
 * argument), QEMU's error texts, key=value and JSON forms of -object/-blockdev.
 * Options that change nothing sevd emulates are accepted and ignored (docs/interface.md §15).
 */

export class QemuUsageError extends Error {}

/** Options with an argument that sevd-qemu accepts (used or ignored). */
const WITH_ARG = new Set([
  'name', 'object', 'blockdev', 'machine', 'M', 'accel', 'cpu', 'm', 'overcommit', 'smp', 'uuid', 'display', 'chardev',
  'mon', 'rtc', 'boot', 'device', 'global', 'audiodev', 'sandbox', 'msg', 'qmp', 'pidfile', 'drive', 'kernel', 'initrd',
  'append', 'bios', 'numa', 'netdev', 'smbios', 'vga', 'add-fd', 'L', 'D', 'd', 'serial', 'parallel', 'monitor', 'k',
  'vnc', 'spice', 'fw_cfg', 'set', 'action', 'compat', 'run-with', 'incoming', 'watchdog-action', 'iscsi', 'fsdev',
]);
/** Flags sevd-qemu accepts (used or ignored). */
const FLAGS = new Set([
  'S', 'no-user-config', 'nodefaults', 'nographic', 'daemonize', 'no-shutdown', 'no-hpet', 'no-acpi', 'enable-kvm',
  'no-reboot', 'snapshot', 'preconfig', 'enable-fips', 'usb', 'version', 'help', 'h',
]);

export interface Option {
  name: string;
  value: string | null;
}

/** `-opt value` / `--opt value` pairs, in order; unknown options fail as QEMU fails. */
export function parseOptions(argv: readonly string[]): Option[] {
  const out: Option[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    // QEMU takes a bare word as a disk image; sevd-qemu has no disks.
    if (!a.startsWith('-')) throw new QemuUsageError(`${a}: invalid option`);
    const name = a.replace(/^--?/, '');
    if (FLAGS.has(name)) {
      out.push({ name, value: null });
    } else if (WITH_ARG.has(name)) {
      const value = argv[++i];
      if (value === undefined) throw new QemuUsageError(`${a}: requires an argument`);
      out.push({ name, value });
    } else {
      throw new QemuUsageError(`${a}: invalid option`);
    }
  }
  return out;
}

/** QEMU's option syntax `first,key=value,key2=value2` (`,,` escapes a comma); a JSON object as is. */
export function parseKeyval(s: string, implied?: string): Record<string, unknown> {
  if (s.startsWith('{')) {
    try {
      return JSON.parse(s) as Record<string, unknown>;
    } catch {
      throw new QemuUsageError(`JSON parse error: ${s}`);
    }
  }
  const out: Record<string, unknown> = {};
  const parts: string[] = [];
  let cur = '';
  for (let i = 0; i < s.length; i++) {
    if (s[i] === ',' && s[i + 1] === ',') {
      cur += ',';
      i++;
    } else if (s[i] === ',') {
      parts.push(cur);
      cur = '';
    } else cur += s[i];
  }
  parts.push(cur);
  parts.forEach((p, i) => {
    const eq = p.indexOf('=');
    if (eq < 0) {
      if (i === 0 && implied) out[implied] = p;
      else out[p] = 'on';
    } else out[p.slice(0, eq)] = p.slice(eq + 1);
  });
  return out;
}

/** `-m 256`, `-m 2G`, `-m size=262144k`: bytes (QEMU's default unit is MiB). */
export function memoryBytes(s: string): number {
  const kv = parseKeyval(s, 'size');
  const m = /^(\d+)([kKmMgGtT]?)$/.exec(String(kv['size'] ?? ''));
  if (!m) throw new QemuUsageError(`-m ${s}: Parameter 'size' expects a non-negative number below 2^64`);
  const unit = { '': 1 << 20, k: 1 << 10, m: 1 << 20, g: 1 << 30, t: 2 ** 40 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  return Number(m[1]) * unit;
}

const onOff = (v: unknown): boolean => v === true || v === 'on' || v === 'yes' || v === 'true';

/** The pieces of a domain start sevd-qemu turns into a GUEST_SPEC. */
export interface DomainLine {
  name: string;
  paused: boolean;
  memory: number;
  smp: number;
  cpu: string | null;
  firmware: string | null;
  firmwareNodes: { format: string; storage: string } | null;
  kernel: string | null;
  initrd: string | null;
  append: string | null;
  sev: Record<string, unknown> | null;
  /** The QMP monitor's chardev: an inherited listening fd, or a path. */
  monitor: { fd: number } | { path: string };
}

export interface ProbeLine {
  qmpPath: string;
  pidfile: string | null;
  daemonize: boolean;
}

export function isProbe(opts: Option[]): boolean {
  return opts.some((o) => (o.name === 'machine' || o.name === 'M') && parseKeyval(o.value!, 'type')['type'] === 'none');
}

export function probeLine(opts: Option[]): ProbeLine {
  const qmp = opts.find((o) => o.name === 'qmp');
  const m = qmp ? /^unix:([^,]+)/.exec(qmp.value!) : null;
  if (!m) throw new QemuUsageError('-qmp: the probe needs a unix: QMP socket');
  return { qmpPath: m[1]!, pidfile: opts.find((o) => o.name === 'pidfile')?.value ?? null, daemonize: opts.some((o) => o.name === 'daemonize') };
}

export function domainLine(opts: Option[]): DomainLine {
  const all = (n: string) => opts.filter((o) => o.name === n).map((o) => o.value!);
  const one = (n: string) => all(n).at(-1) ?? null;
  const nameOpt = one('name');
  const name = nameOpt ? String(parseKeyval(nameOpt, 'guest')['guest']) : 'sevd-qemu';
  const machine = Object.assign({}, ...[...all('machine'), ...all('M')].map((m) => parseKeyval(m, 'type'))) as Record<string, unknown>;
  const objects = all('object').map((o) => parseKeyval(o, 'qom-type'));
  const blockdevs = all('blockdev').map((b) => parseKeyval(b));

  let memory = 128 << 20;
  const backend = objects.find((o) => String(o['qom-type']).startsWith('memory-backend-') && o['id'] === machine['memory-backend']);
  if (backend) memory = Number(backend['size']);
  else if (one('m')) memory = memoryBytes(one('m')!);

  const smpOpt = one('smp');
  const smpKv = smpOpt ? parseKeyval(smpOpt, 'cpus') : {};
  const smp = smpOpt ? Number(smpKv['cpus'] ?? 1) : 1;
  const cpuOpt = one('cpu');
  const cpu = cpuOpt ? cpuOpt.split(',')[0]! : null;

  // Firmware: machine pflash0=NODE over libvirt's -blockdev pair, -drive if=pflash, or -bios.
  let firmware: string | null = null;
  let firmwareNodes: DomainLine['firmwareNodes'] = null;
  const pflash0 = machine['pflash0'];
  if (typeof pflash0 === 'string') {
    const fmt = blockdevs.find((b) => b['node-name'] === pflash0);
    if (!fmt) throw new QemuUsageError(`Cannot find device='' nor node-name='${pflash0}'`);
    const file = fmt['file'];
    const storage = typeof file === 'string' ? blockdevs.find((b) => b['node-name'] === file) : (file as Record<string, unknown> | undefined);
    const filename = storage?.['filename'] ?? fmt['filename'];
    if (typeof filename !== 'string') throw new QemuUsageError(`-blockdev: node '${pflash0}' has no file`);
    firmware = filename;
    firmwareNodes = { format: pflash0, storage: typeof file === 'string' ? file : String(storage?.['node-name'] ?? `${pflash0}-storage`) };
  } else {
    const drive = all('drive').map((d) => parseKeyval(d)).find((d) => d['if'] === 'pflash' && (d['unit'] ?? '0') === '0');
    firmware = (drive?.['file'] as string | undefined) ?? one('bios');
  }

  const cgs = machine['confidential-guest-support'];
  let sev: Record<string, unknown> | null = null;
  if (cgs !== undefined) {
    const obj = objects.find((o) => o['id'] === cgs);
    if (!obj) throw new QemuUsageError(`Property 'confidential-guest-support' of machine: object '${String(cgs)}' not found`);
    if (obj['qom-type'] !== 'sev-guest') throw new QemuUsageError(`-object ${String(obj['qom-type'])}: sevd-qemu runs sev-guest objects only`);
    sev = obj;
  }

  const mon = all('mon').map((m) => parseKeyval(m, 'chardev')).find((m) => (m['mode'] ?? 'readline') === 'control');
  if (!mon) throw new QemuUsageError('-mon: sevd-qemu needs a QMP monitor (-mon chardev=…,mode=control)');
  const chardev = all('chardev').map((c) => parseKeyval(c, 'backend')).find((c) => c['id'] === mon['chardev']);
  if (!chardev) throw new QemuUsageError(`-mon: chardev '${String(mon['chardev'])}' not found`);
  if (chardev['backend'] !== 'socket' || !onOff(chardev['server'] ?? 'off')) {
    throw new QemuUsageError(`-chardev ${String(chardev['id'])}: sevd-qemu serves the monitor on a listening socket (server=on)`);
  }
  const monitor = chardev['fd'] !== undefined ? { fd: Number(chardev['fd']) } : { path: String(chardev['path']) };

  return {
    name, paused: opts.some((o) => o.name === 'S'), memory, smp, cpu, firmware, firmwareNodes,
    kernel: one('kernel'), initrd: one('initrd'), append: one('append'), sev, monitor,
  };
}

/** The GUEST_SPEC for the launch socket's guest-add (docs/interface.md §3, §15). */
export function guestSpec(d: DomainLine, readInput: (path: string) => string): Record<string, unknown> {
  const spec: Record<string, unknown> = { name: d.name, memory: d.memory, smp: d.smp, paused: d.paused };
  if (d.cpu && d.cpu !== 'max') spec['cpu'] = d.cpu;
  if (d.firmware) spec['firmware'] = d.firmware;
  if (d.firmwareNodes) spec['firmware-nodes'] = d.firmwareNodes;
  for (const k of ['kernel', 'initrd', 'append'] as const) if (d[k] !== null) spec[k] = d[k];
  if (d.sev) {
    const s = d.sev;
    const num = (k: string) => (s[k] === undefined ? undefined : Number(s[k]));
    const sev: Record<string, unknown> = {};
    for (const k of ['policy', 'handle', 'cbitpos', 'reduced-phys-bits']) if (num(k) !== undefined) sev[k] = num(k);
    if (s['kernel-hashes'] !== undefined) sev['kernel-hashes'] = onOff(s['kernel-hashes']);
    spec['sev-guest'] = sev;
    // libvirt writes these in its per-domain directory, which this process (libvirt's QEMU user) reads.
    const inputs: Record<string, string> = {};
    if (typeof s['dh-cert-file'] === 'string') inputs['dh-cert'] = readInput(s['dh-cert-file']).trim();
    if (typeof s['session-file'] === 'string') inputs['session'] = readInput(s['session-file']).trim();
    if (Object.keys(inputs).length) spec['sev-inputs'] = inputs;
  }
  return spec;
}
