/**
 * End to end with an unmodified libvirt (Debian's 9.0) on sevd (docs/interface.md §15):
 * domcapabilities shows SEV; an SEV domain (policy 0x3) with a session made by the
 * independent test owner starts paused; domlaunchsecinfo equals the owner's expected
 * measurement; virt-qemu-sev-validate --domain --insecure says OK; domsetlaunchsecstate
 * delivers the owner's secret, which the guest agent reads after resume; destroy leaves no
 * guest and no ASID; SIGKILL of the launcher leaves nothing within a second; an SEV-ES
 * domain (policy 0x7, 2 vCPUs) starts and is measured. The test starts virtlogd and
 * libvirtd when they are not running and stops what it started. Needs root.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RawClient } from '../helpers/raw-client.js';
import { buildLaunchSession, buildSecretPacket, launchDigest, verifyMeasurement } from '../helpers/guest-owner.js';
import { domainXml, ENV, libvirtUnavailable, OVMF, openLibvirtHost, URI, VIRT_TYPE, virsh } from '../helpers/libvirt-host.js';

// libvirt's host capabilities alone take seconds on a loaded machine: a generous budget.
t.setTimeout(600000);
t.test('libvirt runs SEV and SEV-ES domains on sevd', { skip: libvirtUnavailable(), timeout: 600000 }, async (t) => {
  const hadDevSev = existsSync('/dev/sev');
  const host = await openLibvirtHost();
  t.teardown(() => host.close());
  const { ctl, emulator, dir, define, nothingLeft } = host;

  const caps = virsh('domcapabilities', '--emulatorbin', emulator, '--arch', 'x86_64', '--machine', 'pc-q35-7.2', '--virttype', VIRT_TYPE);
  t.match(caps, /<sev supported='yes'>/, 'domcapabilities: SEV supported');
  const sevCaps = await ctl.execute<{ pdh: string; cbitpos: number }>('query-sev-capabilities');
  t.match(caps, new RegExp(`<cbitpos>${sevCaps.cbitpos}</cbitpos>`), "sevd's cbitpos");

  const name = `sevd-e2e-${process.pid}`;
  const owner = buildLaunchSession(Buffer.from(sevCaps.pdh, 'base64'), 0x3);
  define(name, domainXml(name, { emulator, sev: { policy: 0x3, dhCert: owner.godhB64, session: owner.sessionB64 } }));
  let t0 = performance.now();
  virsh('start', '--paused', name);
  const info = virsh('domlaunchsecinfo', name);
  const startMs = performance.now() - t0;
  t.comment(`virsh start --paused → domlaunchsecinfo: ${startMs.toFixed(0)} ms`);
  const field = (k: string) => new RegExp(`${k}\\s*:\\s*(\\S+)`).exec(info)?.[1] ?? '';
  const measurement = field('sev-measurement');
  t.equal(field('sev-policy'), '3', 'policy 3');
  t.ok(
    verifyMeasurement(owner, measurement, { apiMajor: Number(field('sev-api-major')), apiMinor: Number(field('sev-api-minor')), build: Number(field('sev-build-id')) }, launchDigest(readFileSync(OVMF))),
    "domlaunchsecinfo equals the owner's expected measurement",
  );
  writeFileSync(join(dir, 'tik.bin'), owner.tik);
  writeFileSync(join(dir, 'tek.bin'), owner.tek);
  const v = spawnSync('virt-qemu-sev-validate', ['--connect', URI, '--domain', name, '--insecure', '--tik', join(dir, 'tik.bin'), '--tek', join(dir, 'tek.bin')], { env: ENV, encoding: 'utf8', timeout: 60000 });
  t.equal(v.status, 0, `virt-qemu-sev-validate exit 0 ${v.stderr}`);
  t.match(v.stdout, /OK: Looks good to me/, 'virt-qemu-sev-validate: OK');

  const guid = '736869e5-84f0-4973-92ec-06879ce3da0b';
  const secret = Buffer.from('disk passphrase from the owner');
  const packet = buildSecretPacket(owner, measurement, [{ guid, data: secret }]);
  writeFileSync(join(dir, 'hdr.b64'), packet.header);
  writeFileSync(join(dir, 'secret.b64'), packet.secret);
  virsh('domsetlaunchsecstate', name, '--secrethdr', join(dir, 'hdr.b64'), '--secret', join(dir, 'secret.b64'), '--set-address', String(8 * 1024 * 1024));
  virsh('resume', name);
  t.match(virsh('domstate', name), /running/, 'running after resume');
  const qga = await RawClient.connect(host.sevd.guestQga(name));
  const secrets = (await qga.execute('guest-get-secrets')).return;
  await qga.close();
  t.same(secrets, [{ guid, data: secret.toString('base64') }], "the guest agent reads the owner's secret");
  virsh('destroy', name);
  const t1 = Date.now();
  while (!(await nothingLeft())) {
    if (Date.now() - t1 > 3000) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  t.ok(await nothingLeft(), 'destroy: no guest, no ASID left');

  // The same start, then SIGKILL of the launcher (libvirt's pidfile names it).
  virsh('start', '--paused', name);
  const pid = Number(readFileSync(`/run/libvirt/qemu/${name}.pid`, 'utf8'));
  t.ok((await ctl.execute<{ name: string }[]>('query-guests')).some((g) => g.name === name), 'started again');
  process.kill(pid, 'SIGKILL');
  t0 = performance.now();
  while (!(await nothingLeft())) {
    if (performance.now() - t0 > 5000) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  const goneMs = performance.now() - t0;
  t.ok(goneMs < 1000, `SIGKILL of sevd-qemu: guest and ASID gone in ${goneMs.toFixed(0)} ms`);
  t.comment(`SIGKILL → nothing left: ${goneMs.toFixed(0)} ms`);
  spawnSync('virsh', ['-c', URI, 'destroy', name], { env: ENV });

  // SEV-ES: policy 0x7, 2 vCPUs.
  const es = `sevd-e2e-es-${process.pid}`;
  define(es, domainXml(es, { emulator, sev: { policy: 0x7 }, vcpus: 2 }));
  virsh('start', '--paused', es);
  const esInfo = virsh('domlaunchsecinfo', es);
  t.match(esInfo, /sev-policy\s*:\s*7/, 'SEV-ES domain: policy 7');
  t.match(esInfo, /sev-measurement\s*:\s*\S{64}/, 'and measured');
  const cpus = JSON.parse(virsh('qemu-monitor-command', es, '{"execute":"query-cpus-fast"}')).return;
  t.equal(cpus.length, 2, 'two vCPUs');
  virsh('destroy', es);
  const t2 = Date.now();
  while (!(await nothingLeft()) && Date.now() - t2 < 3000) await new Promise((r) => setTimeout(r, 20));
  t.ok(await nothingLeft(), 'nothing left in sevd');
  // Here as well as in the teardown: the daemons this test started are stopped before tap ends.
  await host.close();
  t.notOk(existsSync('/dev/sev') && !hadDevSev, '/dev/sev removed again');
});
