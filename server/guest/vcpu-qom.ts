/**
 * A vCPU as QOM object (`/machine/unattached/device[N]`): its property list and the values
 * `qom-get` reads, for the guest's CPU model (docs/interface.md §15). The model data is
 * QEMU 7.2's own expansion (x86-cpu-qom-data.ts); models newer than QEMU 7.2 take their
 * nearest 7.2 ancestor, with AVX-512 on Zen 4 and later as the guest's CPUID has it
 * (server/sev/vcpu-cpuid.ts), and family/model/stepping from the guest's signature (the
 * VMSA's RDX), so libvirt reads what the guest sees.
 */
import { CPU_MODELS, HOST_SIGNATURE, cpuModelHasAvx512 } from '../../abi/vmsa.js';
import { BASE_EXPANSION, MODEL_DELTAS, X86_CPU_PROPS } from './x86-cpu-qom-data.js';
import { QmpError } from '../errors/qmp-error.js';
import type { OutValue } from '../qmp/json/writer.js';

export const VCPU_PROPERTIES: readonly { name: string; type: string }[] = X86_CPU_PROPS.split(',').map((e) => {
  const i = e.lastIndexOf(':');
  return { name: e.slice(0, i), type: e.slice(i + 1) };
});
const PROP_TYPES = new Map(VCPU_PROPERTIES.map((p) => [p.name, p.type]));

/** AVX-512 features of QEMU's EPYC-Genoa model (target/i386/cpu.c). */
const AVX512 = ['avx512f', 'avx512dq', 'avx512ifma', 'avx512cd', 'avx512bw', 'avx512vl', 'avx512vbmi', 'avx512vbmi2',
  'avx512vnni', 'avx512bitalg', 'avx512-vpopcntdq', 'avx512-bf16', 'gfni', 'vaes', 'vpclmulqdq'];

function nearestQemu72Model(cpu: string, generation: string): string {
  const name = cpu === 'host' ? { naples: 'EPYC', rome: 'EPYC-Rome', milan: 'EPYC-Milan' }[generation] ?? 'EPYC-Milan' : cpu;
  if (name === 'EPYC-IBPB') return 'EPYC-v2';
  if (MODEL_DELTAS[name]) return name;
  if (name === 'EPYC') return 'EPYC-v1';
  if (name.startsWith('EPYC-v')) return 'EPYC-v3';
  if (name === 'EPYC-Rome' || name === 'EPYC-Rome-v1') return 'EPYC-Rome-v1';
  if (name.startsWith('EPYC-Rome')) return 'EPYC-Rome-v2';
  return 'EPYC-Milan-v1';
}

export class VcpuQom {
  readonly typeName: string;
  private readonly values: Record<string, OutValue>;

  constructor(cpu: string, generation: string) {
    this.typeName = `${cpu}-x86_64-cpu`;
    const base = nearestQemu72Model(cpu, generation);
    const sig = cpu === 'host' ? HOST_SIGNATURE[generation]! : CPU_MODELS[cpu]!;
    const family = ((sig >> 8) & 0xf) + ((sig >> 20) & 0xff);
    const model = (((sig >> 16) & 0xf) << 4) | ((sig >> 4) & 0xf);
    this.values = { ...BASE_EXPANSION, ...MODEL_DELTAS[base], family, model, stepping: sig & 0xf };
    if (cpuModelHasAvx512(cpu, generation)) for (const f of AVX512) this.values[f] = true;
  }

  /** `apicId`: the vCPU's index (one socket per vCPU, as libvirt's default topology). */
  get(property: string, apicId: number): OutValue {
    const type = PROP_TYPES.get(property);
    if (type === undefined) throw QmpError.generic(`Property '${this.typeName}.${property}' not found`);
    switch (property) {
      case 'type': return this.typeName;
      case 'realized': case 'hotpluggable': return true;
      case 'hotplugged': case 'start-powered-off': return false;
      // The emulated host supports the whole model: KVM filters nothing.
      case 'unavailable-features': return [];
      case 'apic-id': case 'socket-id': return apicId;
      case 'core-id': case 'thread-id': case 'die-id': case 'cluster-id': return 0;
      case 'parent_bus': return '';
      case 'memory': return '/machine/unattached/system[0]';
      case 'crash-information': throw QmpError.generic('No crash occurred');
    }
    const v = this.values[property];
    if (v !== undefined) return v;
    if (type === 'bool') return false;
    throw QmpError.generic(`Property '${this.typeName}.${property}' is not readable`);
  }
}
