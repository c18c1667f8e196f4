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

class UsageError extends Error {}

function flags(argv: string[]): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) throw new UsageError(`unexpected argument '${a}'`);
    const v = argv[++i];
    if (v === undefined) throw new UsageError(`${a} needs a value`);
    m.set(a.slice(2), [...(m.get(a.slice(2)) ?? []), v]);
  }
  return m;
}

const req = (f: Map<string, string[]>, k: string) => {
  const v = f.get(k)?.[0];
  if (v === undefined) throw new UsageError(`--${k} is required`);
  return v;
};
const num = (f: Map<string, string[]>, k: string) => {
  const n = Number(req(f, k));
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`--${k} must be a non-negative integer`);
  return n;
};
/** A binary file, or base64 text in it. */
const blob = (path: string) => {
  const b = readFileSync(path);
  const text = b.toString('latin1').trim();
  // Binary certificates always hold bytes outside the base64 alphabet (zeros).
  return /^[A-Za-z0-9+/=\s]+$/.test(text) ? Buffer.from(text, 'base64') : b;
};

function digestFrom(f: Map<string, string[]>): Buffer {
  const fw = readFileSync(req(f, 'firmware'));
  const kernel = f.get('kernel')?.[0];
  const initrd = f.get('initrd')?.[0];
  // SEV-ES: the VMSAs of --vcpus vCPUs of --vcpu-type (default EPYC-v4) follow the data.
  const es = f.has('vcpus') ? { vcpus: num(f, 'vcpus'), vcpuType: f.get('vcpu-type')?.[0] ?? 'EPYC-v4' } : undefined;
  return launchDigest(fw, kernel ? { kernel: readFileSync(kernel), initrd: initrd ? readFileSync(initrd) : null, append: f.get('append')?.[0] ?? null } : undefined, es);
}

function run(argv: string[]): number {
  const [cmd, sub] = argv;
  const out = (s: string) => process.stdout.write(s + '\n');
  switch (cmd) {
    case 'verify': {
      const f = flags(argv.slice(1));
      const chain = f.has('dir') ? chainFromDir(req(f, 'dir')) : chainFromExport(JSON.parse(readFileSync(req(f, 'export'), 'utf8')));
      const trust = f.has('ark') ? { ark: readFileSync(req(f, 'ark')) } : { generation: req(f, 'generation') };
      const r = verifyPlatform(chain, trust);
      out(r.ok ? 'chain verifies: ARK → ASK → CEK → PEK ← OCA, PEK → PDH' : `chain does not verify: ${r.step}: ${r.reason}`);
      return r.ok ? 0 : 1;
    }
    case 'session': {
      const f = flags(argv.slice(1));
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
    case 'measurement': {
      const f = flags(argv.slice(2));
      const info = { apiMajor: num(f, 'api-major'), apiMinor: num(f, 'api-minor'), build: num(f, 'build') };
      const tik = readFileSync(req(f, 'tik'));
      const ld = digestFrom(f);
      if (sub === 'build') {
        out(buildMeasurement(tik, info, num(f, 'policy'), ld, Buffer.from(req(f, 'mnonce'), 'base64')));
        return 0;
      }
      if (sub === 'verify') {
        const ok = verifyMeasurement(req(f, 'measure'), tik, info, num(f, 'policy'), ld);
        out(ok ? 'measurement verifies' : 'measurement does not match');
        return ok ? 0 : 1;
      }
      throw new UsageError('measurement build|verify');
    }
    case 'secret': {
      if (sub !== 'build') throw new UsageError('secret build');
      const f = flags(argv.slice(2));
      const entries = (f.get('secret') ?? []).map((s) => {
        const eq = s.indexOf('=');
        if (eq < 0) throw new UsageError(`--secret GUID=VALUE, got '${s}'`);
        const v = s.slice(eq + 1);
        return { guid: s.slice(0, eq), data: v.startsWith('@') ? readFileSync(v.slice(1)) : Buffer.from(v) };
      });
      if (!entries.length) throw new UsageError('at least one --secret');
      const iv = f.get('iv')?.[0];
      const r = buildSecret(readFileSync(req(f, 'tek')), readFileSync(req(f, 'tik')), req(f, 'measure'), entries, iv ? Buffer.from(iv, 'base64') : undefined);
      out(JSON.stringify({ 'packet-header': r.header, secret: r.secret }));
      return 0;
    }
    case 'attestation': {
      if (sub !== 'verify') throw new UsageError('attestation verify');
      const f = flags(argv.slice(2));
      const r = verifyAttestation(req(f, 'report'), blob(req(f, 'pek')), {
        ...(f.has('mnonce') ? { mnonce: Buffer.from(req(f, 'mnonce'), 'base64') } : {}),
        ...(f.has('digest') ? { launchDigest: Buffer.from(req(f, 'digest'), 'hex') } : {}),
        ...(f.has('policy') ? { policy: num(f, 'policy') } : {}),
      });
      out(r.ok ? 'attestation report verifies' : `attestation report rejected: ${r.problems.join('; ')}`);
      return r.ok ? 0 : 1;
    }
    default:
      throw new UsageError('commands: verify, session, measurement build|verify, secret build, attestation verify');
  }
}

try {
  process.exitCode = run(process.argv.slice(2));
} catch (e) {
  if (e instanceof UsageError) {
    process.stderr.write(`sev-owner: ${e.message}\n`);
    process.exitCode = 2;
  } else {
    process.stderr.write(`sev-owner: ${(e as Error).message}\n`);
    process.exitCode = 1;
  }
}
