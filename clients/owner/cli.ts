#!/usr/bin/env node
/**
 * sev-owner: the guest-owner toolkit on the command line.
 *   verify        (--dir DIR | --export FILE) (--generation NAME | --ark FILE)
 *   session       --pdh FILE --policy N --out DIR
 *   measurement build  --firmware FILE [--kernel F --initrd F --append S] [--vcpus N --vcpu-type NAME] --api-major N --api-minor N --build N --policy N --tik FILE --mnonce B64
 *   measurement verify --measure B64 --firmware FILE [...] [--vcpus N --vcpu-type NAME] --api-major N --api-minor N --build N --policy N --tik FILE
 *   secret build  --tek FILE --tik FILE --measure B64 --secret GUID=TEXT|GUID=@FILE ... [--iv B64]
 *   attestation verify --report B64 --pek FILE [--mnonce B64] [--digest HEX] [--policy N]
 * Exit 0 on success, 1 when a check fails, 2 on usage errors.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  buildLaunchSession, buildMeasurement, buildSecret, chainFromDir, chainFromExport, launchDigest, verifyAttestation,
  verifyMeasurement, verifyPlatform,
} from './owner.js';
import { SNP_PRODUCTS, snpProductOf, verifySnpReport } from './snp-verify.js';
import { decodeSnpReport, SNP_REPORT_SIZE } from '../../abi/snp/report.js';
import { buildSnpIdBlock, snpLaunchDigest } from './snp-measure.js';
import { helpText, parseCommand, UsageError, type Values } from '../../cli/args.js';
import { COMMAND_LIST, COMMANDS, PROGRAM, TOP, VERSION } from './commands.js';

type Flags = Values;
/** A binary file, or base64 text in it. */
const blob = (path: string) => {
  const b = readFileSync(path);
  const text = b.toString('latin1').trim();
  // Binary certificates always hold bytes outside the base64 alphabet (zeros).
  return /^[A-Za-z0-9+/=\s]+$/.test(text) ? Buffer.from(text, 'base64') : b;
};
const str = (f: Flags, k: string) => (typeof f[k] === 'string' ? (f[k] as string) : undefined);
const req = (f: Flags, k: string) => {
  const v = str(f, k);
  if (v === undefined) throw new UsageError(`${PROGRAM}: --${k} is required`);
  return v;
};
const num = (f: Flags, k: string) => {
  const n = Number(req(f, k));
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`${PROGRAM}: --${k} must be a non-negative integer`);
  return n;
};
function digestFrom(f: Flags): Buffer {
  const fw = readFileSync(req(f, 'firmware'));
  const kernel = str(f, 'kernel');
  const initrd = str(f, 'initrd');
  // SEV-ES: the VMSAs of --vcpus vCPUs of --vcpu-type (default EPYC-v4) follow the data.
  const es = str(f, 'vcpus') !== undefined ? { vcpus: num(f, 'vcpus'), vcpuType: str(f, 'vcpu-type') ?? 'EPYC-v4' } : undefined;
  return launchDigest(fw, kernel ? { kernel: readFileSync(kernel), initrd: initrd ? readFileSync(initrd) : null, append: str(f, 'append') ?? null } : undefined, es);
}

async function run(argv: string[]): Promise<number> {
  const out = (text: string) => process.stdout.write(text.endsWith('\n') ? text : text + '\n');
  if (argv.length === 0 || argv[0]!.startsWith('-')) {
    const { values } = parseCommand({ ...TOP, positionals: undefined }, argv);
    if (values['version']) out(`${PROGRAM} ${VERSION}`);
    else out(helpText(TOP, COMMAND_LIST));
    return 0;
  }
  const [cmd, sub] = argv;
  const key = COMMANDS[cmd!] ? cmd! : `${cmd} ${sub}`;
  const def = COMMANDS[key];
  if (!def) throw new UsageError(`${PROGRAM}: unknown command '${[cmd, sub].filter(Boolean).join(' ')}' (see ${PROGRAM} --help)`);
  const { values: f } = parseCommand(def, argv.slice(key.split(' ').length));
  if (f['help']) {
    out(helpText(def));
    return 0;
  }
  switch (key) {
    case 'verify': {
      const chain = str(f, 'dir') ? chainFromDir(req(f, 'dir')) : chainFromExport(JSON.parse(readFileSync(req(f, 'export'), 'utf8')));
      const trust = str(f, 'ark') ? { ark: readFileSync(req(f, 'ark')) } : { generation: req(f, 'generation') };
      const r = verifyPlatform(chain, trust);
      out(r.ok ? 'chain verifies: ARK → ASK → CEK → PEK ← OCA, PEK → PDH' : `chain does not verify: ${r.step}: ${r.reason}`);
      return r.ok ? 0 : 1;
    }
    case 'session': {
      const s = buildLaunchSession(blob(req(f, 'pdh')), num(f, 'policy'));
      const dir = req(f, 'out');
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'godh.b64'), s.godh.toString('base64'));
      writeFileSync(join(dir, 'session.b64'), s.session.toString('base64'));
      writeFileSync(join(dir, 'tek.bin'), s.tek, { mode: 0o600 });
      writeFileSync(join(dir, 'tik.bin'), s.tik, { mode: 0o600 });
      out(`wrote godh.b64 session.b64 tek.bin tik.bin to ${dir}`);
      return 0;
    }
    case 'measurement build':
    case 'measurement verify': {
      const info = { apiMajor: num(f, 'api-major'), apiMinor: num(f, 'api-minor'), build: num(f, 'build') };
      const tik = readFileSync(req(f, 'tik'));
      const ld = digestFrom(f);
      if (sub === 'build') {
        out(buildMeasurement(tik, info, num(f, 'policy'), ld, Buffer.from(req(f, 'mnonce'), 'base64')));
        return 0;
      }
      const ok = verifyMeasurement(req(f, 'measure'), tik, info, num(f, 'policy'), ld);
      out(ok ? 'measurement verifies' : 'measurement does not match');
      return ok ? 0 : 1;
    }
    case 'secret build': {
      const entries = ((f['secret'] as string[] | undefined) ?? []).map((s) => {
        const eq = s.indexOf('=');
        if (eq < 0) throw new UsageError(`${PROGRAM}: --secret GUID=VALUE, got '${s}'`);
        const v = s.slice(eq + 1);
        return { guid: s.slice(0, eq), data: v.startsWith('@') ? readFileSync(v.slice(1)) : Buffer.from(v) };
      });
      if (!entries.length) throw new UsageError(`${PROGRAM}: at least one --secret`);
      const iv = str(f, 'iv');
      const r = buildSecret(readFileSync(req(f, 'tek')), readFileSync(req(f, 'tik')), req(f, 'measure'), entries, iv ? Buffer.from(iv, 'base64') : undefined);
      out(JSON.stringify({ 'packet-header': r.header, secret: r.secret }));
      return 0;
    }
    case 'attestation verify': {
      const r = verifyAttestation(req(f, 'report'), blob(req(f, 'pek')), {
        ...(str(f, 'mnonce') ? { mnonce: Buffer.from(req(f, 'mnonce'), 'base64') } : {}),
        ...(str(f, 'digest') ? { launchDigest: Buffer.from(req(f, 'digest'), 'hex') } : {}),
        ...(str(f, 'policy') ? { policy: num(f, 'policy') } : {}),
      });
      out(r.ok ? 'attestation report verifies' : `attestation report rejected: ${r.problems.join('; ')}`);
      return r.ok ? 0 : 1;
    }
    case 'snp measure': {
      const kernel = str(f, 'kernel');
      const initrd = str(f, 'initrd');
      out(snpLaunchDigest(readFileSync(req(f, 'firmware')), {
        vcpus: num(f, 'vcpus'), vcpuType: str(f, 'vcpu-type') ?? 'EPYC-v4',
        ...(kernel ? { kernel: { kernel: readFileSync(kernel), initrd: initrd ? readFileSync(initrd) : null, append: str(f, 'append') ?? null } } : {}),
        ...(str(f, 'guest-features') ? { guestFeatures: Number(req(f, 'guest-features')) } : {}),
      }).toString('hex'));
      return 0;
    }
    case 'snp id-block': {
      const hex = (k: string) => (str(f, k) ? Buffer.from(req(f, k), 'hex') : undefined);
      const r = buildSnpIdBlock({
        measurement: hex('measurement')!, policy: BigInt(req(f, 'policy')), idKey: readFileSync(req(f, 'id-key'), 'utf8'),
        ...(str(f, 'author-key') ? { authorKey: readFileSync(req(f, 'author-key'), 'utf8') } : {}),
        ...(hex('family-id') ? { familyId: hex('family-id')! } : {}),
        ...(hex('image-id') ? { imageId: hex('image-id')! } : {}),
        ...(str(f, 'guest-svn') ? { guestSvn: num(f, 'guest-svn') } : {}),
      });
      if (r.idBlock.length === 0) throw new UsageError(`${PROGRAM}: --measurement is required`);
      out(JSON.stringify({ 'id-block': r.idBlock, 'id-auth': r.idAuth }));
      return 0;
    }
    case 'snp verify': {
      const report = blob(req(f, 'report'));
      const chainPem = str(f, 'chain') ? readFileSync(req(f, 'chain'), 'utf8') : undefined;
      const generation = str(f, 'generation');
      const product = generation !== undefined ? SNP_PRODUCTS[generation] : snpProductOf(report, chainPem);
      if (generation !== undefined && !product) throw new UsageError(`${PROGRAM}: --generation must be milan, genoa or turin`);
      if (!product) {
        throw new UsageError(`${PROGRAM}: --generation is required: ${chainPem ? "the chain's ARK does not name a product (CN=ARK-Milan, ARK-Genoa, ARK-Turin) and " : ''}the report (version ${report.length === SNP_REPORT_SIZE ? decodeSnpReport(report).version : '?'}) carries no CPUID family/model`);
      }
      const hexOf = (k: string) => (str(f, k) !== undefined ? Buffer.from(req(f, k), 'hex') : undefined);
      const minTcb = str(f, 'min-tcb')?.split(',').map(Number);
      const predicted = str(f, 'firmware') ? snpLaunchDigest(readFileSync(req(f, 'firmware')), { vcpus: num(f, 'vcpus'), vcpuType: str(f, 'vcpu-type') ?? 'EPYC-v4' }) : undefined;
      const r = await verifySnpReport(report, {
        product,
        ...(chainPem ? { chainPem } : {}),
        ...(str(f, 'vcek') ? { vcek: readFileSync(req(f, 'vcek')) } : {}),
        ...(str(f, 'kds') ? { kdsBase: req(f, 'kds') } : {}),
        expect: {
          ...(hexOf('measurement') ?? predicted ? { measurement: (hexOf('measurement') ?? predicted)! } : {}),
          ...(hexOf('report-data') ? { reportData: hexOf('report-data')! } : {}),
          ...(hexOf('host-data') ? { hostData: hexOf('host-data')! } : {}),
          ...(str(f, 'policy') !== undefined ? { policy: BigInt(req(f, 'policy')) } : {}),
          ...(minTcb ? { minTcb: { bootloader: minTcb[0] ?? 0, tee: minTcb[1] ?? 0, snp: minTcb[2] ?? 0, microcode: minTcb[3] ?? 0, fmc: minTcb[4] ?? 0 } } : {}),
        },
      });
      for (const c of r.checks) out(`${c.ok ? 'ok  ' : 'FAIL'} ${c.check}${c.detail ? `: ${c.detail}` : ''}`);
      const failed = r.checks.filter((c) => !c.ok).map((c) => c.check);
      out(r.ok ? 'SNP report verifies' : `SNP report rejected: ${failed.join('; ')}`);
      return r.ok ? 0 : 1;
    }
    default:
      throw new UsageError(`${PROGRAM}: unknown command '${key}'`);
  }
}

run(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    if (e instanceof UsageError) {
      process.stderr.write(`${e.message}\n`);
      process.exitCode = 2;
    } else {
      process.stderr.write(`sev-owner: ${(e as Error).message}\n`);
      process.exitCode = 1;
    }
  },
);
