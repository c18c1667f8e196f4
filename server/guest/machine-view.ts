/**
 * QEMU's machine as libvirt reads it (docs/interface.md §15), derived from the guest:
 * its monitor chardev, one hotpluggable vCPU slot per vCPU (one socket each, as libvirt's
 * default topology), the QOM paths of the vCPUs, a virtio balloon over its memory, and its
 * firmware flash as the two block nodes libvirt's `-blockdev` pair makes (raw over file).
 */
import type { Guest } from './guest.js';
import { VcpuQom, VCPU_PROPERTIES } from './vcpu-qom.js';
import { QmpError } from '../errors/qmp-error.js';
import type { CommandReturns } from '../dispatch/schema-types.js';

type BlockNode = CommandReturns<'query-named-block-nodes'>[number];

const DEFAULT_NODES = { format: 'pflash0-format', storage: 'pflash0-storage' };

export class MachineView {
  readonly vcpu: VcpuQom;
  /** set-action's choices (reboot, shutdown, panic, watchdog). */
  readonly actions: Record<string, unknown> = {};
  /** The balloon's target (QEMU keeps it; the guest's driver would move toward it). */
  balloonTarget: number;

  constructor(private readonly guest: Guest, private readonly chardevFile: string, generation: string, private readonly vcpuThread: () => number) {
    this.vcpu = new VcpuQom(guest.config.cpu, generation);
    this.balloonTarget = guest.config.memoryBytes;
  }

  /** QEMU 7.2's q35: vCPU 0 is device[0], the kvmvapic device[1], then the other vCPUs. */
  static vcpuPath(i: number): string {
    return `/machine/unattached/device[${i === 0 ? 0 : i + 1}]`;
  }

  private vcpuIndex(path: string): number | undefined {
    const m = /^\/machine\/unattached\/device\[(\d+)\]$/.exec(path);
    if (!m) return undefined;
    const n = Number(m[1]);
    const i = n === 0 ? 0 : n - 1;
    return i < this.guest.config.smp && MachineView.vcpuPath(i) === path ? i : undefined;
  }

  chardevs(): CommandReturns<'query-chardev'> {
    return [{ label: 'charmonitor', filename: this.chardevFile, 'frontend-open': true }];
  }

  cpuProps(i: number): Record<string, number> {
    return { 'socket-id': i, 'core-id': 0, 'thread-id': 0 };
  }

  cpusFast(): CommandReturns<'query-cpus-fast'> {
    return Array.from({ length: this.guest.config.smp }, (_, i) => ({
      'cpu-index': i, 'qom-path': MachineView.vcpuPath(i), 'thread-id': this.vcpuThread(), props: this.cpuProps(i), target: 'x86_64',
    }));
  }

  /** Highest socket first, as QEMU lists the possible CPUs. */
  hotpluggableCpus(): CommandReturns<'query-hotpluggable-cpus'> {
    return Array.from({ length: this.guest.config.smp }, (_, k) => {
      const i = this.guest.config.smp - 1 - k;
      return { type: this.vcpu.typeName, 'vcpus-count': 1, props: this.cpuProps(i), 'qom-path': MachineView.vcpuPath(i) };
    });
  }

  qomList(path: string): CommandReturns<'qom-list'> {
    if (path === '/machine/peripheral') return [{ name: 'type', type: 'string' }, { name: 'balloon0', type: 'child<virtio-balloon-pci>' }];
    if (this.vcpuIndex(path) !== undefined) return VCPU_PROPERTIES.map((p) => ({ name: p.name, type: p.type }));
    throw new QmpError('DeviceNotFound', `Device '${path}' not found`);
  }

  qomGet(path: string, property: string): CommandReturns<'qom-get'> {
    const i = this.vcpuIndex(path);
    if (i === undefined) throw new QmpError('DeviceNotFound', `Device '${path}' not found`);
    return this.vcpu.get(property, i);
  }

  /** QEMU clamps the target to the RAM size; the guest's driver (none runs here) would follow. */
  balloon(value: number): void {
    if (value <= 0) throw QmpError.generic("Parameter 'target' expects a size");
    this.balloonTarget = Math.min(value, this.guest.config.memoryBytes);
  }

  balloonInfo(): CommandReturns<'query-balloon'> {
    return { actual: this.guest.config.memoryBytes };
  }

  private flashNodes(): { format: BlockNode; storage: BlockNode } | null {
    const path = this.guest.config.firmwarePath;
    if (path === null) return null;
    const names = this.guest.config.firmwareNodes ?? DEFAULT_NODES;
    const size = this.guest.config.firmware.length;
    // As the file was when read (server/daemon/spec-files.ts): no name is looked up again.
    const actual = this.guest.config.firmwareAllocated;
    const node = (name: string, drv: string, ro: boolean): BlockNode => ({
      file: path, 'node-name': name, ro, drv, backing_file_depth: 0, encrypted: false, detect_zeroes: 'off',
      bps: 0, bps_rd: 0, bps_wr: 0, iops: 0, iops_rd: 0, iops_wr: 0,
      image: { filename: path, format: drv, 'dirty-flag': false, 'actual-size': actual, 'virtual-size': size },
      cache: { writeback: true, direct: false, 'no-flush': false }, write_threshold: 0,
    });
    return { format: node(names.format, 'raw', true), storage: node(names.storage, 'file', false) };
  }

  namedBlockNodes(): CommandReturns<'query-named-block-nodes'> {
    const n = this.flashNodes();
    return n ? [n.format, n.storage] : [];
  }

  block(): CommandReturns<'query-block'> {
    const n = this.flashNodes();
    return n ? [{ device: '', qdev: '/machine/system.flash0', type: 'unknown', removable: false, locked: false, inserted: n.format }] : [];
  }
}
