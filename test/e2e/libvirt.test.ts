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
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startSevd } from '../helpers/sevd-process.js';
import { QmpClient } from '../../clients/qmp/client.js';
import { RawClient } from '../helpers/raw-client.js';
import { buildLaunchSession, buildSecretPacket, launchDigest, verifyMeasurement } from '../helpers/guest-owner.js';

const LAUNCHER = resolve('dist/clients/qemu-launcher/main.js');
const OVMF = '/usr/share/OVMF/OVMF_CODE.fd';
const VARS = '/usr/share/OVMF/OVMF_VARS.fd';
const URI = 'qemu:///system';
// virt-qemu-sev-validate is `#!/usr/bin/env python3`: Debian's python3 has its modules.
const ENV = { ...process.env, PATH: `/usr/sbin:/usr/bin:/sbin:/bin:${process.env['PATH'] ?? ''}` };

const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`], { env: ENV }).status === 0;
function why(): string | false {
  if (process.getuid?.() !== 0) return 'libvirtd cannot run here: the libvirt end-to-end test needs root (CI runs as root)';
  for (const c of ['libvirtd', 'virtlogd', 'virsh']) if (!has(c)) return `libvirtd cannot run here: ${c} is not installed (apt-get install libvirt-daemon-system libvirt-clients libvirt-clients-qemu)`;
  if (!existsSync(OVMF) || !existsSync(VARS)) return `${OVMF} missing (apt-get install ovmf)`;
  return false;
}

const virsh = (...args: string[]) => execFileSync('virsh', ['-c', URI, ...args], { env: ENV, encoding: 'utf8', timeout: 60000 });
const running = (name: string) => spawnSync('pgrep', ['-x', name]).status === 0;
async function until(what: string, ok: () => boolean, ms = 15000): Promise<void> {
  const t0 = Date.now();
  while (!ok()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function domainXml(name: string, emulator: string, o: { policy: number; vcpus: number; dhCert?: string; session?: string }): string {
  return `<domain type='kvm'>
  <name>${name}</name>
  <memory unit='MiB'>256</memory>
  <vcpu>${o.vcpus}</vcpu>
  <os>
    <type arch='x86_64' machine='pc-q35-7.2'>hvm</type>
    <loader readonly='yes' type='pflash'>${OVMF}</loader>
    <nvram template='${VARS}'/>
  </os>
  <features><acpi/></features>
  <cpu mode='custom' match='exact' check='none'><model fallback='forbid'>EPYC-Milan</model></cpu>
  <devices>
    <emulator>${emulator}</emulator>
    <controller type='usb' model='none'/>
    <memballoon model='virtio'/>
  </devices>
  <launchSecurity type='sev'>
    <cbitpos>51</cbitpos>
    <reducedPhysBits>1</reducedPhysBits>
    <policy>0x${o.policy.toString(16).padStart(4, '0')}</policy>
    ${o.dhCert ? `<dhCert>${o.dhCert}</dhCert>` : ''}
    ${o.session ? `<session>${o.session}</session>` : ''}
  </launchSecurity>
</domain>`;
}

// libvirt's host capabilities alone take seconds on a loaded machine: a generous budget.
t.setTimeout(600000);
t.test('libvirt runs SEV and SEV-ES domains on sevd', { skip: why(), timeout: 600000 }, async (t) => {
  // Daemons: started here only when not running, stopped at the end.
  const started: string[] = [];
  for (const d of ['virtlogd', 'libvirtd']) {
    if (running(d)) continue;
    execFileSync(d, ['-d'], { env: ENV });
    started.push(d);
  }
  await until('libvirtd', () => spawnSync('virsh', ['-c', URI, 'version'], { env: ENV }).status === 0);
  t.teardown(() => {
    for (const d of started.reverse()) {
      const pid = Number(readFileSync(`/run/${d}.pid`, 'utf8'));
      if (pid > 0) process.kill(pid, 'SIGTERM');
    }
  });
  // What libvirt checks on a host without SEV hardware: /dev/sev (a null device stands in).
  let madeDevSev = false;
  if (!existsSync('/dev/sev')) {
    execFileSync('mknod', ['-m', '0660', '/dev/sev', 'c', '1', '3']);
    execFileSync('chgrp', ['kvm', '/dev/sev']);
    madeDevSev = true;
  }
  t.teardown(() => madeDevSev && unlinkSync('/dev/sev'));

  const sevd = await startSevd({ qemuVersion: '7.2.0', websocket: false, guests: [], launch: { group: 'kvm', mode: '0660' } });
  t.teardown(() => sevd.stop());
  // libvirt's QEMU user traverses to the launch socket (the set-up script's run directory mode).
  chmodSync(sevd.dir, 0o711);
  chmodSync(sevd.runDir, 0o711);
  const dir = mkdtempSync(join(tmpdir(), 'sevd-libvirt-'));
  chmodSync(dir, 0o755);
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const cfg = join(dir, 'qemu.json');
  writeFileSync(cfg, JSON.stringify({ launchSocket: join(sevd.runDir, 'launch.qmp') }), { mode: 0o644 });
  // libvirt clears the environment: the emulator is a wrapper that names the config.
  const emulator = join(dir, 'sevd-qemu');
  writeFileSync(emulator, `#!/bin/sh\nSEVD_QEMU_CONFIG=${cfg} exec ${process.execPath} ${LAUNCHER} "$@"\n`, { mode: 0o755 });
  const ctl = await QmpClient.connect(sevd.controlPath);
  t.teardown(() => ctl.close());
  const names: string[] = [];
  t.teardown(() => {
    for (const n of names) {
      spawnSync('virsh', ['-c', URI, 'destroy', n], { env: ENV });
      spawnSync('virsh', ['-c', URI, 'undefine', '--nvram', n], { env: ENV });
    }
  });
  const define = (name: string, xml: string) => {
    const f = join(dir, `${name}.xml`);
    writeFileSync(f, xml);
    names.push(name);
    virsh('define', f);
  };
  const nothingLeft = async () => {
    const guests = await ctl.execute<unknown[]>('query-guests');
    const asids = await ctl.execute<{ 'in-use': unknown[] }>('query-asids');
    return guests.length === 0 && asids['in-use'].length === 0;
  };

  const caps = virsh('domcapabilities', '--emulatorbin', emulator, '--arch', 'x86_64', '--machine', 'pc-q35-7.2', '--virttype', 'kvm');
  t.match(caps, /<sev supported='yes'>/, 'domcapabilities: SEV supported');
  const sevCaps = await ctl.execute<{ pdh: string; cbitpos: number }>('query-sev-capabilities');
  t.match(caps, new RegExp(`<cbitpos>${sevCaps.cbitpos}</cbitpos>`), "sevd's cbitpos");

  const name = `sevd-e2e-${process.pid}`;
  const owner = buildLaunchSession(Buffer.from(sevCaps.pdh, 'base64'), 0x3);
  define(name, domainXml(name, emulator, { policy: 0x3, vcpus: 1, dhCert: owner.godhB64, session: owner.sessionB64 }));
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
  const qga = await RawClient.connect(sevd.guestQga(name));
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
  define(es, domainXml(es, emulator, { policy: 0x7, vcpus: 2 }));
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
});
