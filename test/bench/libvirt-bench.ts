/**
 * libvirt on sevd (docs/interface.md §15): `virsh start --paused` → `domlaunchsecinfo` of an
 * SEV domain (policy 0x3) through sevd-qemu, beside the same libvirt starting a plain
 * domain on the real QEMU (TCG) in the same run. Medians (p50) of a few starts; skipped,
 * with the reason, where libvirtd cannot run (not root, libvirt not installed).
 */
import { domainXml, libvirtUnavailable, openLibvirtHost, virsh } from '../helpers/libvirt-host.js';
import { median } from './qmp-load.js';

type Report = (name: string, value: unknown) => void;
const STARTS = 5;

export async function libvirtBench(report: Report): Promise<void> {
  const why = libvirtUnavailable();
  if (why) {
    report('libvirt: skipped', why);
    return;
  }
  const host = await openLibvirtHost();
  try {
    const sev = `sevd-bench-sev-${process.pid}`;
    const plain = `sevd-bench-plain-${process.pid}`;
    host.define(sev, domainXml(sev, { emulator: host.emulator, sev: { policy: 0x3 } }));
    host.define(plain, domainXml(plain, { emulator: '/usr/bin/qemu-system-x86_64', type: 'qemu' }));
    // The first start of each probes the emulator (libvirt caches it): not counted.
    const timed = (name: string, after: () => void) => {
      const runs: number[] = [];
      for (let i = 0; i <= STARTS; i++) {
        const t0 = performance.now();
        virsh('start', '--paused', name);
        after();
        if (i > 0) runs.push(performance.now() - t0);
        virsh('destroy', name);
      }
      return runs;
    };
    const sevRuns = timed(sev, () => virsh('domlaunchsecinfo', sev));
    const plainRuns = timed(plain, () => virsh('domstate', plain));
    report('libvirt: SEV domain on sevd, start --paused → domlaunchsecinfo p50 ms', median(sevRuns));
    report('libvirt: plain domain on QEMU 7.2 (TCG), start --paused p50 ms', median(plainRuns));
    report('libvirt: runs ms', { sevd: sevRuns.map((x) => Math.round(x)), qemu: plainRuns.map((x) => Math.round(x)) });
  } finally {
    await host.close();
  }
}
