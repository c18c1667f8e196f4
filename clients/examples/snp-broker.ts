#!/usr/bin/env node
/**
 * The SEV-SNP flow as a key broker runs it against a running sevd:
 *   node dist/clients/examples/snp-broker.js CONTROL_SOCKET [--generation milan] [--kds http://127.0.0.1:4445]
 * start an SNP guest (Debian's OVMF, 4 vCPUs) → inside the guest, a fresh P-384 key whose
 * hash goes into REPORT_DATA and a report requested through the guest agent (the guest's
 * VMPCK message path) → the broker checks the report against the KDS (sevd's endpoint and
 * chain) and the measurement it expects → it wraps a secret to the guest's key (ECDH +
 * AES-256-GCM) → the guest unwraps it and keeps it in its (encrypted) memory. Each step is
 * printed; any failure exits 1.
 */
import { createCipheriv, createDecipheriv, createHash, diffieHellman, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { QgaClient, QmpClient } from '../qmp/client.js';
import { snpLaunchDigest } from '../owner/snp-measure.js';
import { SNP_PRODUCTS, verifySnpReport } from '../owner/snp-verify.js';

const OVMF = '/usr/share/OVMF/OVMF_CODE.fd';
const step = (n: number, text: string) => process.stdout.write(`[${n}] ${text}\n`);
const pub = (k: KeyObject) => k.export({ format: 'der', type: 'spki' });

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const control = argv[0];
  const opt = (name: string) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined);
  if (!control || control.startsWith('-')) {
    process.stderr.write('usage: snp-broker CONTROL_SOCKET [--generation milan|genoa|turin] [--kds URL]\n');
    process.exit(2);
  }
  const generation = opt('--generation') ?? 'milan';
  const product = SNP_PRODUCTS[generation]!;
  const kds = opt('--kds') ?? 'http://127.0.0.1:4445';
  const ctl = await QmpClient.connect(control);
  const name = `snp-${process.pid}`;
  const cpu = generation === 'genoa' ? 'EPYC-Genoa' : 'EPYC-Milan';
  await ctl.execute('guest-add', { name, memory: '512M', firmware: OVMF, smp: 4, cpu, 'sev-snp-guest': { policy: 0x30000 } });
  const guests = await ctl.execute<{ name: string; 'qga-path': string }[]>('query-guests');
  const agent = await QgaClient.connect(guests.find((g) => g.name === name)!['qga-path']);
  step(1, `SNP guest ${name} running (4 × ${cpu}, Debian OVMF)`);

  // Inside the guest: a key pair for this boot; its hash binds the report to it.
  const guestKey = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const binding = createHash('sha512').update(pub(guestKey.publicKey)).digest();
  const { report } = await agent.execute<{ report: string }>('guest-snp-report', { 'report-data': binding.toString('base64') });
  step(2, `the guest asked the firmware for a report (REPORT_DATA = SHA-512 of its public key)`);

  // The broker: KDS chain and VCEK, signature, TCB, expected measurement, the key binding.
  const chainPem = await (await fetch(`${kds}/vcek/v1/${product}/cert_chain`)).text();
  const expected = snpLaunchDigest(readFileSync(OVMF), { vcpus: 4, vcpuType: cpu });
  const verdict = await verifySnpReport(Buffer.from(report, 'base64'), { product, chainPem, kdsBase: kds, expect: { measurement: expected, reportData: binding, policy: 0x30000n } });
  if (!verdict.ok) throw new Error(`report rejected: ${verdict.checks.filter((c) => !c.ok).map((c) => c.check).join('; ')}`);
  step(3, `report verifies: ${verdict.checks.length} checks (VCEK → ASK → ARK via ${kds}, measurement ${expected.toString('hex').slice(0, 16)}…, key binding)`);

  // Wrap the secret to the guest's key: ECDH with an ephemeral broker key, AES-256-GCM.
  const secret = Buffer.from(`disk key for ${name}`);
  const broker = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const kek = createHash('sha256').update(diffieHellman({ privateKey: broker.privateKey, publicKey: guestKey.publicKey })).digest();
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', kek, iv);
  const wrapped = Buffer.concat([c.update(secret), c.final()]);
  const tag = c.getAuthTag();
  step(4, `secret wrapped to the attested key (${wrapped.length} bytes)`);

  // Inside the guest: unwrap and keep it in private memory.
  const gkek = createHash('sha256').update(diffieHellman({ privateKey: guestKey.privateKey, publicKey: broker.publicKey })).digest();
  const d = createDecipheriv('aes-256-gcm', gkek, iv);
  d.setAuthTag(tag);
  const unwrapped = Buffer.concat([d.update(wrapped), d.final()]);
  if (!unwrapped.equals(secret)) throw new Error('the guest could not unwrap the secret');
  await agent.execute('guest-memory-write', { gpa: 0x300000, data: unwrapped.toString('base64') });
  step(5, 'the guest unwrapped the secret and keeps it in its encrypted memory');

  agent.close();
  await ctl.execute('guest-del', { name });
  ctl.close();
  step(6, 'done');
}

main().catch((e) => {
  process.stderr.write(`snp-broker: ${(e as Error).message}\n`);
  process.exit(1);
});
