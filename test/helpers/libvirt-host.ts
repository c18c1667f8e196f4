/**
 * A sevd host that Debian's libvirt 9.0 can use, for the end-to-end test and the bench:
 * virtlogd and libvirtd (started only when not running, stopped by close()), /dev/sev (a
 * null device, as the set-up script makes it), sevd with its launch socket for the kvm
 * group, and an emulator wrapper naming sevd-qemu's config (libvirt clears the environment).
 * Needs root.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startSevd, type SevdProcess } from './sevd-process.js';
import { QmpClient } from '../../clients/qmp/client.js';

export const LAUNCHER = resolve('dist/clients/qemu-launcher/main.js');
export const OVMF = '/usr/share/OVMF/OVMF_CODE.fd';
export const OVMF_VARS = '/usr/share/OVMF/OVMF_VARS.fd';
export const URI = 'qemu:///system';
/** sevd needs no KVM; libvirt's domain type follows what the host has (CI may lack /dev/kvm). */
export const VIRT_TYPE: 'kvm' | 'qemu' = existsSync('/dev/kvm') ? 'kvm' : 'qemu';
// virt-qemu-sev-validate is `#!/usr/bin/env python3`: Debian's python3 has its modules.
export const ENV = { ...process.env, PATH: `/usr/sbin:/usr/bin:/sbin:/bin:${process.env['PATH'] ?? ''}` };

const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`], { env: ENV }).status === 0;

/** Why libvirtd cannot run here (a skip line), or false. */
export function libvirtUnavailable(): string | false {
  if (process.getuid?.() !== 0) return 'libvirtd cannot run here: the libvirt end-to-end test needs root (CI runs as root)';
  for (const c of ['libvirtd', 'virtlogd', 'virsh']) if (!has(c)) return `libvirtd cannot run here: ${c} is not installed (apt-get install libvirt-daemon-system libvirt-clients libvirt-clients-qemu)`;
  if (!existsSync(OVMF) || !existsSync(OVMF_VARS)) return `${OVMF} missing (apt-get install ovmf)`;
  return false;
}

export const virsh = (...args: string[]) => execFileSync('virsh', ['-c', URI, ...args], { env: ENV, encoding: 'utf8', timeout: 120000 });

export interface DomainOptions {
  emulator: string;
  /** Omitted: a plain domain. */
  sev?: { policy: number; dhCert?: string; session?: string };
  vcpus?: number;
  /** `kvm` or `qemu` (TCG); default VIRT_TYPE. */
  type?: 'kvm' | 'qemu';
}

export function domainXml(name: string, o: DomainOptions): string {
  const sev = o.sev
    ? `<launchSecurity type='sev'>
    <cbitpos>51</cbitpos>
    <reducedPhysBits>1</reducedPhysBits>
    <policy>0x${o.sev.policy.toString(16).padStart(4, '0')}</policy>
    ${o.sev.dhCert ? `<dhCert>${o.sev.dhCert}</dhCert>` : ''}
    ${o.sev.session ? `<session>${o.sev.session}</session>` : ''}
  </launchSecurity>`
    : '';
  return `<domain type='${o.type ?? VIRT_TYPE}'>
  <name>${name}</name>
  <memory unit='MiB'>256</memory>
  <vcpu>${o.vcpus ?? 1}</vcpu>
  <os>
    <type arch='x86_64' machine='pc-q35-7.2'>hvm</type>
    <loader readonly='yes' type='pflash'>${OVMF}</loader>
    <nvram template='${OVMF_VARS}'/>
  </os>
  <features><acpi/></features>
  <cpu mode='custom' match='exact' check='none'><model fallback='forbid'>EPYC-Milan</model></cpu>
  <devices>
    <emulator>${o.emulator}</emulator>
    <controller type='usb' model='none'/>
    <memballoon model='virtio'/>
  </devices>
  ${sev}
</domain>`;
}

export interface LibvirtHost {
  sevd: SevdProcess;
  ctl: QmpClient;
  /** The wrapper libvirt execs as `<emulator>`. */
  emulator: string;
  dir: string;
  define(name: string, xml: string): void;
  /** No guest and no ASID left in sevd. */
  nothingLeft(): Promise<boolean>;
  close(): Promise<void>;
}

async function until(what: string, ok: () => boolean, ms = 60000): Promise<void> {
  const t0 = Date.now();
  while (!ok()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function openLibvirtHost(): Promise<LibvirtHost> {
  const undo: (() => unknown)[] = [];
  const close = async () => {
    for (const f of undo.splice(0).reverse()) await f();
  };
  try {
    for (const d of ['virtlogd', 'libvirtd']) {
      if (spawnSync('pgrep', ['-x', d]).status === 0) continue;
      execFileSync(d, ['-d'], { env: ENV });
      undo.push(() => {
        const pid = Number(readFileSync(`/run/${d}.pid`, 'utf8'));
        if (pid > 0) process.kill(pid, 'SIGTERM');
      });
    }
    await until('libvirtd', () => spawnSync('virsh', ['-c', URI, 'version'], { env: ENV }).status === 0);
    // What libvirt checks on a host without SEV hardware: /dev/sev (a null device stands in).
    if (!existsSync('/dev/sev')) {
      execFileSync('mknod', ['-m', '0660', '/dev/sev', 'c', '1', '3']);
      execFileSync('chgrp', ['kvm', '/dev/sev']);
      undo.push(() => unlinkSync('/dev/sev'));
    }
    const sevd = await startSevd({ qemuVersion: '7.2.0', websocket: false, guests: [], launch: { group: 'kvm', mode: '0660' } });
    undo.push(() => sevd.stop());
    // libvirt's QEMU user traverses to the launch socket (the set-up script's run directory mode).
    chmodSync(sevd.dir, 0o711);
    chmodSync(sevd.runDir, 0o711);
    const dir = mkdtempSync(join(tmpdir(), 'sevd-libvirt-'));
    chmodSync(dir, 0o755);
    undo.push(() => rmSync(dir, { recursive: true, force: true }));
    const cfg = join(dir, 'qemu.json');
    writeFileSync(cfg, JSON.stringify({ launchSocket: join(sevd.runDir, 'launch.qmp') }), { mode: 0o644 });
    const emulator = join(dir, 'sevd-qemu');
    writeFileSync(emulator, `#!/bin/sh\nSEVD_QEMU_CONFIG=${cfg} exec ${process.execPath} ${LAUNCHER} "$@"\n`, { mode: 0o755 });
    const ctl = await QmpClient.connect(sevd.controlPath);
    undo.push(() => ctl.close());
    const names: string[] = [];
    undo.push(() => {
      for (const n of names) {
        spawnSync('virsh', ['-c', URI, 'destroy', n], { env: ENV });
        spawnSync('virsh', ['-c', URI, 'undefine', '--nvram', n], { env: ENV });
      }
    });
    return {
      sevd, ctl, emulator, dir, close,
      define(name, xml) {
        const f = join(dir, `${name}.xml`);
        writeFileSync(f, xml);
        names.push(name);
        virsh('define', f);
      },
      async nothingLeft() {
        const guests = await ctl.execute<unknown[]>('query-guests');
        const asids = await ctl.execute<{ 'in-use': unknown[] }>('query-asids');
        return guests.length === 0 && asids['in-use'].length === 0;
      },
    };
  } catch (e) {
    await close();
    throw e;
  }
}
