#!/usr/bin/env node
/**
 * The pre-attestation flow as a key broker runs it against a running sevd:
 *   node dist/clients/examples/attest.js CONTROL_SOCKET --ark TRUSTED_ARK_FILE [--es]
 * fetch capabilities → verify the chain → build a session → add a paused guest → verify
 * the measurement → inject the secret → resume → the guest reads its secret. Each step is
 * printed; any failure exits 1. `--es`: an SEV-ES guest (policy 0x5) with 4 EPYC-Milan
 * vCPUs on Debian's OVMF_CODE.fd, whose measurement covers the four VMSAs.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QgaClient, QmpClient } from '../qmp/client.js';
import { buildLaunchSession, buildSecret, chainFromExport, launchDigest, verifyAttestation, verifyMeasurement, verifyPlatform } from '../owner/owner.js';
import { buildBuiltinFirmware } from '../../abi/builtin-firmware.js';

const step = (n: number, text: string) => process.stdout.write(`[${n}] ${text}\n`);

async function main(): Promise<void> {
  const [control, flag, arkPath, mode] = process.argv.slice(2);
  if (!control || flag !== '--ark' || !arkPath || (mode !== undefined && mode !== '--es')) {
    process.stderr.write('usage: attest CONTROL_SOCKET --ark TRUSTED_ARK_FILE [--es]\n');
    process.exit(2);
  }
  const es = mode === '--es' ? { vcpus: 4, vcpuType: 'EPYC-Milan', firmware: '/usr/share/OVMF/OVMF_CODE.fd' } : null;
  const ctl = await QmpClient.connect(control);
  const caps = await ctl.execute<Record<string, string>>('query-sev-capabilities');
  step(1, `capabilities: PDH ${caps['pdh']!.length} base64 chars, chain ${caps['cert-chain']!.length}, cbitpos ${caps['cbitpos']}`);

  const chain = chainFromExport(await ctl.execute('sev-export-certs'));
  const verdict = verifyPlatform(chain, { ark: readFileSync(arkPath) });
  if (!verdict.ok) throw new Error(`chain rejected at ${verdict.step}: ${verdict.reason}`);
  step(2, 'certificate chain verifies against the trusted ARK');

  const policy = es ? 0x5 : 0x1;
  const session = buildLaunchSession(chain.pdh!, policy);
  const dir = mkdtempSync(join(tmpdir(), 'attest-'));
  writeFileSync(join(dir, 'godh.b64'), session.godh.toString('base64'));
  writeFileSync(join(dir, 'session.b64'), session.session.toString('base64'));
  step(3, `launch session built for policy 0x${policy.toString(16)} (TEK/TIK kept by the broker)`);

  const name = `attest-${process.pid}`;
  await ctl.execute('guest-add', {
    name, paused: true,
    ...(es ? { firmware: es.firmware, smp: es.vcpus, cpu: es.vcpuType } : {}),
    'sev-guest': { policy, 'dh-cert-file': join(dir, 'godh.b64'), 'session-file': join(dir, 'session.b64') },
  });
  const guests = await ctl.execute<{ name: string; 'qmp-path': string; 'qga-path': string }[]>('query-guests');
  const g = guests.find((x) => x.name === name)!;
  step(4, `guest ${name} added, paused in prelaunch${es ? ` (SEV-ES, ${es.vcpus} vCPUs)` : ''}`);

  const vm = await QmpClient.connect(g['qmp-path']);
  const info = await vm.execute<Record<string, number>>('query-sev');
  const measure = (await vm.execute<{ data: string }>('query-sev-launch-measure')).data;
  const ld = es ? launchDigest(readFileSync(es.firmware), undefined, es) : launchDigest(buildBuiltinFirmware());
  const platform = { apiMajor: info['api-major']!, apiMinor: info['api-minor']!, build: info['build-id']! };
  if (!verifyMeasurement(measure, session.tik, platform, policy, ld)) throw new Error('launch measurement does not match');
  step(5, `measurement verifies (API ${platform.apiMajor}.${platform.apiMinor} build ${platform.build}, LD ${ld.toString('hex').slice(0, 16)}…)`);

  const report = (await vm.execute<{ data: string }>('query-sev-attestation-report', { mnonce: Buffer.alloc(16, 7).toString('base64') })).data;
  const att = verifyAttestation(report, chain.pek!, { mnonce: Buffer.alloc(16, 7), launchDigest: ld, policy });
  if (!att.ok) throw new Error(`attestation report rejected: ${att.problems.join('; ')}`);
  step(6, 'attestation report verifies with the PEK');

  const disk = { guid: '736869e5-84f0-4973-92ec-06879ce3da0b', data: Buffer.from(`disk key for ${name}`) };
  const pkt = buildSecret(session.tek, session.tik, measure, [disk]);
  // Debian's OVMF lists its secret area with size 0: the broker names the address itself.
  await vm.execute('sev-inject-launch-secret', { 'packet-header': pkt.header, secret: pkt.secret, ...(es ? { gpa: 0x800000 } : {}) });
  step(7, 'secret injected');

  await vm.execute('cont');
  step(8, `guest resumed: ${(await vm.execute<{ status: string }>('query-status')).status}`);

  const agent = await QgaClient.connect(g['qga-path']);
  const secrets = await agent.execute<{ guid: string; data: string }[]>('guest-get-secrets');
  const got = secrets.find((s) => s.guid === disk.guid);
  if (!got || !Buffer.from(got.data, 'base64').equals(disk.data)) throw new Error('the guest did not receive the secret');
  step(9, `the guest reads secret ${disk.guid}`);

  agent.close();
  vm.close();
  await ctl.execute('guest-del', { name });
  ctl.close();
  rmSync(dir, { recursive: true, force: true });
  step(10, 'done');
}

main().catch((e) => {
  process.stderr.write(`attest: ${(e as Error).message}\n`);
  process.exit(1);
});
