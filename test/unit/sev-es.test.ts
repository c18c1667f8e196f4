/**
 * SEV-ES through the firmware and KVM layer code (no second copy of any formula): vectors
 * E1, E2 and S0 (computed independently with virtee/sev-snp-measure) as launch digests the firmware computes (read back from
 * its signed attestation report), and the seed's KVM_SEV_INIT2 rules, each error case.
 */
import t from 'tap';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Platform } from '../../server/firmware/platform.js';
import { GuestFirmware } from '../../server/firmware/guest-firmware.js';
import { FwStatus } from '../../server/firmware/status.js';
import { MemoryController } from '../../server/memory/memory-controller.js';
import { GuestMemory } from '../../server/memory/guest-memory.js';
import { machineLayout, VMSA_REGION_BASE } from '../../server/guest/layout.js';
import { AsidPool } from '../../server/kvm/asid-pool.js';
import { SnpGuestFirmware } from '../../server/firmware/snp-guest-firmware.js';
import { SendReceive } from '../../server/firmware/send-receive.js';
import { Errno, KvmSev, supportedVmsaFeatures, VmType, type VmTypeCode } from '../../server/kvm/kvm-sev.js';
import type { Generation } from '../../server/firmware/emulated-root.js';
import { BSP_RESET_EIP, CPU_MODELS, esResetEip, VMSA_SIZE } from '../../abi/vmsa.js';
import { parseOvmfTable } from '../../abi/ovmf-table.js';
import { buildKernelHashesTable, PADDED_TABLE_SIZE } from '../../abi/kernel-hashes.js';
import { decodeReport } from '../../abi/attestation-report.js';
import { fwStatus, kvmErrno as errno } from '../helpers/fw-status.js';

const FIX = 'test/fixtures';
const OVMF = '/usr/share/OVMF/OVMF_CODE.fd';

function host(generation: Generation = 'milan', asids = { maxAsid: 16, minSevAsid: 5 }) {
  const platform = new Platform({ generation, apiMajor: 1, apiMinor: 55, build: 21, seed: null, stateDir: mkdtempSync(join(tmpdir(), 'sevd-es-')) });
  platform.init();
  const mc = new MemoryController();
  const firmware = new GuestFirmware(platform, mc, asids);
  return { platform, mc, firmware, snpFirmware: new SnpGuestFirmware(platform, mc), sendReceive: new SendReceive(firmware), asids: new AsidPool(firmware), generation };
}
type Host = ReturnType<typeof host>;

/** The AmdSev 2M image of the vectors: zeros, then the OVMF AmdSev suffix. */
function amdSev2M(): Buffer {
  const suffix = readFileSync(join(FIX, 'measurement/ovmf_AmdSev_suffix.bin'));
  return Buffer.concat([Buffer.alloc(2 * 1024 * 1024 - suffix.length), suffix]);
}

/** The launch QEMU runs, through the KVM layer; returns the digest from the signed report. */
function launch(h: Host, o: { firmware: Buffer; policy: number; vcpus?: number; cpu?: string; kernelHashes?: boolean; vmType?: VmTypeCode; legacy?: boolean }): Buffer {
  const vcpus = o.vcpus ?? 0;
  const mem = new GuestMemory(machineLayout(64 << 20, o.firmware.length, vcpus), h.mc);
  const flashBase = 2 ** 32 - o.firmware.length;
  mem.write(flashBase, o.firmware);
  const vm = KvmSev.createVm(h, o.vmType ?? (o.policy & 4 ? VmType.SEV_ES : VmType.SEV));
  if (o.legacy) vm.init(o.policy & 4 ? 'KVM_SEV_ES_INIT' : 'KVM_SEV_INIT');
  else vm.init('KVM_SEV_INIT2');
  vm.launchStart({ handle: 0, policy: o.policy, godh: null, session: null });
  mem.asid = vm.asid;
  mem.setDefaultPrivate();
  vm.launchUpdateData(mem, flashBase, o.firmware.length);
  if (o.kernelHashes) {
    const table = buildKernelHashesTable(readFileSync(join(FIX, 'snp/vector-kernel.bin')), readFileSync(join(FIX, 'snp/vector-initrd.bin')), 'console=ttyS0');
    const entries = parseOvmfTable(o.firmware);
    const area = 'entries' in entries ? entries.entries.find((e) => e.guid === '7255371f-3a3b-4b04-927b-1da6efa8d454')!.data.readUInt32LE(0) : 0;
    mem.write(area, table);
    vm.launchUpdateData(mem, area, PADDED_TABLE_SIZE);
  }
  if (vcpus > 0) {
    const t = parseOvmfTable(o.firmware);
    const apEip = esResetEip('entries' in t ? t.entries : [])!;
    const signature = CPU_MODELS[o.cpu!]!;
    const resets = Array.from({ length: vcpus }, (_, i) => ({ eip: i === 0 ? BSP_RESET_EIP : apEip, signature }));
    vm.launchUpdateVmsa(mem, resets, resets.map((_, i) => VMSA_REGION_BASE / VMSA_SIZE + i));
  }
  vm.launchMeasure(48);
  const report = decodeReport(vm.attestationReport(Buffer.alloc(16), 208));
  vm.destroy();
  return report.launchDigest;
}

t.test('vectors E1, E2, S0 through the firmware', { skip: !existsSync(OVMF) && 'Debian ovmf missing' }, async (t) => {
  const h = host();
  t.equal(launch(h, { firmware: readFileSync(OVMF), policy: 0x5, vcpus: 1, cpu: 'EPYC-v4' }).toString('hex'),
    '4c55bc8b9c7804ec80940258127e2aae37f818436a54c55cebe89542bd6dc63f', 'E1: SEV-ES, OVMF_CODE.fd, 1 vCPU, EPYC-v4');
  t.equal(launch(h, { firmware: amdSev2M(), policy: 0x5, vcpus: 4, cpu: 'EPYC-Milan', kernelHashes: true }).toString('hex'),
    '6984bb26d575d0e42d22410c14f2f24f55a5a5eebc53ab857e544e247bc26b1b', 'E2: SEV-ES, AmdSev 2M, 4 vCPUs, EPYC-Milan, kernel hashes');
  t.equal(launch(h, { firmware: amdSev2M(), policy: 0x1, kernelHashes: true }).toString('hex'),
    '3f77d74cb11a5dbaee61472f170c0f4843b703b3c0f1c352e07a363aeeb0c564', 'S0: SEV, AmdSev 2M, kernel hashes');
  const legacy = launch(h, { firmware: readFileSync(OVMF), policy: 0x5, vcpus: 1, cpu: 'EPYC-v4', vmType: VmType.DEFAULT, legacy: true });
  t.not(legacy.toString('hex'), '4c55bc8b9c7804ec80940258127e2aae37f818436a54c55cebe89542bd6dc63f', 'KVM_SEV_ES_INIT (older VMSA, no FPU words) gives another digest than E1');
  t.equal(h.firmware.contexts.size, 0, 'no context left');
});


t.test('KVM_SEV_INIT2 and the legacy INIT commands: the seed\'s rules', async (t) => {
  const milan = host('milan');
  const vm = (type: VmTypeCode, h: Host = milan) => KvmSev.createVm(h, type);
  t.equal(errno(() => KvmSev.createVm(host('naples'), VmType.SEV_ES)), -Errno.EINVAL, 'no SEV-ES VM type on naples');
  t.equal(errno(() => vm(VmType.DEFAULT).init('KVM_SEV_INIT2')), -Errno.EINVAL, 'INIT2 needs an SEV or SEV-ES VM type');
  t.equal(errno(() => vm(VmType.SEV).init('KVM_SEV_INIT')), -Errno.EINVAL, 'the legacy commands need KVM_X86_DEFAULT_VM');
  t.equal(errno(() => vm(VmType.SEV).init('KVM_SEV_INIT2', { flags: 1 })), -Errno.EINVAL, 'flags must be 0');
  t.equal(errno(() => vm(VmType.SEV).init('KVM_SEV_INIT2', { vmsaFeatures: 0x20 })), -Errno.EINVAL, 'vmsa_features must be 0 for SEV');
  t.equal(errno(() => vm(VmType.SEV).init('KVM_SEV_INIT2', { ghcbVersion: 1 })), -Errno.EINVAL, 'ghcb_version must be 0 for SEV');
  t.equal(errno(() => vm(VmType.SEV_ES).init('KVM_SEV_INIT2', { vmsaFeatures: 0x200 })), -Errno.EINVAL, 'SecureTSC is not in milan\'s vmsa_features');
  t.equal(errno(() => vm(VmType.SEV_ES, host('rome')).init('KVM_SEV_INIT2', { vmsaFeatures: 0x20 })), -Errno.EINVAL, 'DebugSwap is not in rome\'s');
  t.equal(errno(() => vm(VmType.SEV_ES).init('KVM_SEV_INIT2', { vmsaFeatures: 0x1 })), -Errno.EINVAL, 'user space may not set SNPActive');
  t.equal(errno(() => vm(VmType.SEV_ES).init('KVM_SEV_INIT2', { ghcbVersion: 3 })), -Errno.EINVAL, 'GHCB versions above 2 are refused');
  t.same([supportedVmsaFeatures('naples'), supportedVmsaFeatures('rome'), supportedVmsaFeatures('milan'), supportedVmsaFeatures('genoa'), supportedVmsaFeatures('turin')],
    [0, 0, 0x20, 0x220, 0x220], 'KVM_X86_SEV_VMSA_FEATURES per generation');
  const es = vm(VmType.SEV_ES);
  es.init('KVM_SEV_INIT2');
  t.same([es.es, es.ghcbVersion, es.vmsaFeatures], [true, 2, 0], 'ES: ghcb_version 0 means 2');
  t.ok(es.asid! < 5, 'an ES VM takes an ASID below minSevAsid');
  t.equal(errno(() => es.init('KVM_SEV_INIT2')), -Errno.EINVAL, 'a second INIT is refused');
  es.destroy();
  const legacyEs = vm(VmType.DEFAULT);
  legacyEs.init('KVM_SEV_ES_INIT');
  t.same([legacyEs.es, legacyEs.ghcbVersion, legacyEs.vmsaFeatures], [true, 1, 0], 'KVM_SEV_ES_INIT: ES with GHCB version 1 and no features');
  legacyEs.destroy();
  const sev = vm(VmType.SEV);
  t.equal(errno(() => sev.launchStart({ handle: 0, policy: 1, godh: null, session: null })), -Errno.ENOTTY, 'a launch before INIT');
  t.equal(errno(() => sev.sendFinish()), -Errno.ENOTTY, 'SEND_* before INIT');
  t.equal(errno(() => sev.receiveStart({ handle: 0, policy: 1, pdh: Buffer.alloc(0), session: Buffer.alloc(0) })), -Errno.ENOTTY, 'RECEIVE_* before INIT');
  sev.init('KVM_SEV_INIT2');
  t.ok(sev.asid! >= 5, 'an SEV VM takes an ASID from minSevAsid up');
  t.equal(errno(() => sev.launchStart({ handle: 0, policy: 5, godh: null, session: null })), -Errno.EINVAL, 'an ES policy on an SEV VM');
  sev.launchStart({ handle: 0, policy: 1, godh: null, session: null });
  const mem = new GuestMemory(machineLayout(16 << 20, 0, 1), milan.mc);
  t.equal(errno(() => sev.launchUpdateVmsa(mem, [{ eip: BSP_RESET_EIP, signature: 0 }], [VMSA_REGION_BASE / VMSA_SIZE])), -Errno.EINVAL, 'no VMSAs for an SEV VM');
  sev.destroy();
  const small = host('milan', { maxAsid: 4, minSevAsid: 2 });
  const first = KvmSev.createVm(small, VmType.SEV_ES);
  first.init('KVM_SEV_INIT2');
  t.equal(errno(() => KvmSev.createVm(small, VmType.SEV_ES).init('KVM_SEV_INIT2')), -Errno.EBUSY, 'ES ASIDs exhausted: -EBUSY');
  first.destroy();
  // A firmware refusal: -EIO with the status in `error`.
  const bad = KvmSev.createVm(milan, VmType.SEV);
  bad.init('KVM_SEV_INIT2');
  try {
    bad.launchStart({ handle: 0, policy: 1, godh: Buffer.alloc(2084), session: Buffer.alloc(128) });
    t.fail('a malformed GODH must fail');
  } catch (e) {
    t.match(e, { ret: -Errno.EIO, fwError: FwStatus.INVALID_CERTIFICATE, fwCommand: 'LAUNCH_START' }, 'firmware failure: -EIO, fw_error 6');
  }
  try {
    bad.sendStart({ pdh: Buffer.alloc(2084), platCerts: Buffer.alloc(0), amdCerts: Buffer.alloc(0) }, { len: 128 });
    t.fail('SEND_START of an unlaunched VM must fail');
  } catch (e) {
    t.match(e, { ret: -Errno.EIO, fwCommand: 'SEND_START' }, 'SEND_START goes through KVM: -EIO with the firmware status');
  }
  bad.destroy();
  t.equal(milan.firmware.contexts.size, 0, 'no context left');
});

t.test('LAUNCH_UPDATE_VMSA in the firmware: ES policy only, whole pages, DBG_* never reach a VMSA; DebugSwap lands in SEV_FEATURES', async (t) => {
  const h = host();
  const vm = KvmSev.createVm(h, VmType.SEV_ES);
  vm.init('KVM_SEV_INIT2', { vmsaFeatures: 0x20 });
  vm.launchStart({ handle: 0, policy: 0x4, godh: null, session: null });
  const mem = new GuestMemory(machineLayout(16 << 20, 0, 2), h.mc);
  mem.asid = vm.asid;
  mem.setDefaultPrivate();
  const frame = VMSA_REGION_BASE / VMSA_SIZE;
  vm.launchUpdateVmsa(mem, [{ eip: BSP_RESET_EIP, signature: CPU_MODELS['EPYC-Milan']! }], [frame]);
  t.equal(fwStatus(() => h.firmware.dbgDecrypt(vm.handle, mem, VMSA_REGION_BASE, 16)), FwStatus.INVALID_PARAM, 'DBG_DECRYPT of a VMSA is refused');
  t.equal(fwStatus(() => h.firmware.dbgEncrypt(vm.handle, mem, VMSA_REGION_BASE, Buffer.alloc(16))), FwStatus.INVALID_PARAM, 'so is DBG_ENCRYPT');
  t.equal(fwStatus(() => h.firmware.dbgDecrypt(vm.handle, mem, 0x1000, 16)), 'ok', 'other memory still decrypts (debug allowed)');
  t.equal(fwStatus(() => h.firmware.launchUpdateVmsa(vm.handle, mem, VMSA_REGION_BASE + VMSA_SIZE, 16)), FwStatus.INVALID_LEN, 'a VMSA is a whole page');
  t.equal(fwStatus(() => h.firmware.launchUpdateVmsa(vm.handle, mem, VMSA_REGION_BASE + 16, VMSA_SIZE)), FwStatus.INVALID_ADDRESS, 'page aligned');
  const plain = mem.guestReadPage(frame);
  t.equal(plain.readBigUInt64LE(0x3b0), 0x20n, 'the guest (firmware view) sees SEV_FEATURES = DebugSwap');
  t.notOk(mem.read(VMSA_REGION_BASE, VMSA_SIZE).equals(plain), 'the host sees ciphertext');
  vm.destroy();
  const sevOnly = KvmSev.createVm(h, VmType.SEV);
  sevOnly.init('KVM_SEV_INIT2');
  sevOnly.launchStart({ handle: 0, policy: 0x1, godh: null, session: null });
  const m2 = new GuestMemory(machineLayout(16 << 20, 0, 1), h.mc);
  m2.asid = sevOnly.asid;
  t.equal(fwStatus(() => h.firmware.launchUpdateVmsa(sevOnly.handle, m2, VMSA_REGION_BASE, VMSA_SIZE)), FwStatus.POLICY_FAILURE, 'not an ES guest: POLICY_FAILURE');
  sevOnly.destroy();
});
