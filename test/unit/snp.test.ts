/**
 * SEV-SNP guests through the firmware and KVM layer code: vectors N1–N4 (launch digests computed independently with virtee/sev-snp-measure)
 * as the MEASUREMENT of a report the firmware signs after a launch run the way QEMU runs it
 * (KVM's partial LAUNCH_UPDATE progress looped over), the SNP VMSA page hashes, guest
 * message sequence numbers, and the launch refusals.
 */
import t from 'tap';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Platform } from '../../server/firmware/platform.js';
import { GuestFirmware } from '../../server/firmware/guest-firmware.js';
import { SnpGuestFirmware } from '../../server/firmware/snp-guest-firmware.js';
import { SendReceive } from '../../server/firmware/send-receive.js';
import { FwStatus } from '../../server/firmware/status.js';
import { MemoryController } from '../../server/memory/memory-controller.js';
import { GuestMemory } from '../../server/memory/guest-memory.js';
import { machineLayout, VMSA_REGION_BASE } from '../../server/guest/layout.js';
import { AsidPool } from '../../server/kvm/asid-pool.js';
import { KvmSev, SNP_UPDATE_PAGES, VmType } from '../../server/kvm/kvm-sev.js';
import { BSP_RESET_EIP, CPU_MODELS, esResetEip, VMSA_SIZE } from '../../abi/vmsa.js';
import { findEntry, parseOvmfTable, readBaseSize, SEV_HASH_TABLE_BLOCK_GUID } from '../../abi/ovmf-table.js';
import { parseSevMetadata, SectionType, sectionPageType } from '../../abi/snp/ovmf-metadata.js';
import { SnpPageType } from '../../abi/snp/launch-digest.js';
import { buildKernelHashesTable } from '../../abi/kernel-hashes.js';
import { decodeSnpReport } from '../../abi/snp/report.js';
import { decodeSecretsPage } from '../../abi/snp/secrets.js';
import { decodeReportResponse, encodeReportRequest, MsgType, openGuestMessage, sealGuestMessage } from '../../abi/snp/guest-msg.js';
import { buildIdAuth, encodeIdBlock } from '../../abi/snp/id-block.js';
import { fwStatus, kvmErrno, kvmFwStatus } from '../helpers/fw-status.js';

const OVMF = '/usr/share/OVMF/OVMF_CODE.fd';
const OVMF_4M = '/usr/share/OVMF/OVMF_CODE_4M.fd';

function host(generation: 'milan' | 'genoa' = 'milan') {
  const platform = new Platform({ generation, apiMajor: 1, apiMinor: 55, build: 21, seed: null, stateDir: mkdtempSync(join(tmpdir(), 'sevd-snp-')) });
  platform.init();
  const mc = new MemoryController();
  const firmware = new GuestFirmware(platform, mc, { maxAsid: 16, minSevAsid: 8 });
  return { platform, mc, firmware, snpFirmware: new SnpGuestFirmware(platform, mc), sendReceive: new SendReceive(firmware), asids: new AsidPool(firmware), generation };
}
type Host = ReturnType<typeof host>;

function amdSev2M(): Buffer {
  const suffix = readFileSync('test/fixtures/measurement/ovmf_AmdSev_suffix.bin');
  return Buffer.concat([Buffer.alloc(2 * 1024 * 1024 - suffix.length), suffix]);
}

interface Launch {
  vm: KvmSev;
  mem: GuestMemory;
  secretsGpa: number;
  updateCalls: number;
}

/** QEMU's SNP launch through the KVM layer, up to (not including) LAUNCH_FINISH. */
function launch(h: Host, firmware: Buffer, o: { policy?: bigint; kernelHashes?: boolean; features?: number } = {}): Launch {
  const vcpuFrames = 4;
  const mem = new GuestMemory(machineLayout(64 << 20, firmware.length, vcpuFrames), h.mc);
  const flash = 2 ** 32 - firmware.length;
  mem.write(flash, firmware);
  const vm = KvmSev.createVm(h, VmType.SNP);
  vm.init('KVM_SEV_INIT2', o.features ? { vmsaFeatures: o.features } : {});
  vm.snpLaunchStart({ policy: o.policy ?? 0x30000n, gosvw: Buffer.alloc(16) });
  mem.asid = vm.asid;
  mem.setDefaultPrivate();
  mem.setPrivate(flash, firmware.length, true);
  let updateCalls = 0;
  const update = (gpa: number, len: number, type: number) => {
    for (let r = { gpa, len }; r.len > 0; updateCalls++) r = vm.snpLaunchUpdate(mem, r, type as 1);
  };
  update(flash, firmware.length, SnpPageType.NORMAL);
  const t = parseOvmfTable(firmware);
  const entries = 'entries' in t ? t.entries : [];
  let secretsGpa = -1;
  for (const s of parseSevMetadata(firmware, entries)) {
    if (s.type === SectionType.SNP_SECRETS) secretsGpa = s.gpa;
    if (s.type === SectionType.SNP_KERNEL_HASHES && o.kernelHashes) {
      const area = readBaseSize(findEntry(entries, SEV_HASH_TABLE_BLOCK_GUID))!;
      mem.write(s.gpa, Buffer.alloc(s.size));
      mem.write(area.base, buildKernelHashesTable(readFileSync('test/fixtures/snp/vector-kernel.bin'), readFileSync('test/fixtures/snp/vector-initrd.bin'), 'console=ttyS0'));
    }
    update(s.gpa, s.size, sectionPageType(s.type, !!o.kernelHashes));
  }
  return { vm, mem, secretsGpa, updateCalls };
}

function finish(h: Host, l: Launch, firmware: Buffer, vcpus: number, cpu: string, args: Partial<Parameters<KvmSev['snpLaunchFinish']>[3]> = {}) {
  const t = parseOvmfTable(firmware);
  const apEip = esResetEip('entries' in t ? t.entries : []) ?? 0;
  const resets = Array.from({ length: vcpus }, (_, i) => ({ eip: i === 0 ? BSP_RESET_EIP : apEip, signature: CPU_MODELS[cpu]! }));
  l.vm.snpLaunchFinish(l.mem, resets, resets.map((_, i) => VMSA_REGION_BASE / VMSA_SIZE + i), {
    idBlock: null, idAuth: null, authorKeyEn: false, hostData: Buffer.alloc(32), vcekDisabled: false, ...args,
  });
}

/** A report through the guest message path, as the guest's driver asks for it. */
function report(h: Host, l: Launch, seqno = 1n): Buffer {
  const key = decodeSecretsPage(l.mem.guestRead(l.secretsGpa, 4096)).vmpcks[0];
  const req = sealGuestMessage(key, { seqno, type: MsgType.REPORT_REQ, version: 1, vmpck: 0, payload: encodeReportRequest({ reportData: Buffer.alloc(64, 9), vmpl: 0, keySelect: 0 }) });
  const rsp = openGuestMessage(key, l.vm.snpGuestRequest(req));
  return decodeReportResponse(rsp.payload).report;
}

const VECTORS: [string, () => Buffer | null, number, string, { kernelHashes?: boolean; features?: number }, string][] = [
  ['N1', () => (existsSync(OVMF) ? readFileSync(OVMF) : null), 1, 'EPYC-v4', {}, 'a479327cbb0b50e876024c2dac7412d4e5e95c7315c1f8b0446f6d3be69fefba50766285475926737e4a70b155252f88'],
  ['N2', amdSev2M, 4, 'EPYC-Milan', { kernelHashes: true }, 'cbe3308cd05719e83e2636a831b55f625e19a3c3834e7de37313ee356a4db0a7a4a9799234111fd07a5c1f68b3a14e2d'],
  ['N3', () => (existsSync(OVMF) ? readFileSync(OVMF) : null), 2, 'EPYC-Genoa', { features: 0x20 }, '4c3f15c10944733a35c665004cc08c01ea5a9a5388edd670d022a58fb82c05fd14994a6b38446824e9599004172eac17'],
  ['N4', () => (existsSync(OVMF_4M) ? readFileSync(OVMF_4M) : null), 1, 'EPYC-v4', {}, '68d8e64d29b9823e790b0a4c94d8b6cba4bf4322df2197c09eb0942ed07fe8a0f922ed49fe9fbfb33150e2bd858c8a70'],
];

t.test('vectors N1–N4: the MEASUREMENT of a firmware-signed report', async (t) => {
  for (const [id, fwOf, vcpus, cpu, o, digest] of VECTORS) {
    const fw = fwOf();
    if (!fw) {
      t.fail(`${id}: Debian's ovmf package is missing`);
      continue;
    }
    const h = host(id === 'N3' ? 'genoa' : 'milan');
    const l = launch(h, fw, o);
    finish(h, l, fw, vcpus, cpu);
    if (l.secretsGpa < 0) {
      // N4: no SNP metadata, so no secrets page and no VMPCK: the digest is the firmware's own.
      t.equal(fwStatus(() => h.snpFirmware.launchFinish(l.vm.handle, { idBlock: null, idAuth: null, authorKeyEn: false, hostData: Buffer.alloc(32), vcekDisabled: false })), FwStatus.INVALID_GUEST_STATE);
      t.equal((h.snpFirmware as unknown as { contexts: Map<number, { measurement: Buffer }> }).contexts.get(l.vm.handle)!.measurement.toString('hex'), digest, `${id}: launch digest`);
    } else {
      t.equal(decodeSnpReport(report(h, l)).measurement.toString('hex'), digest, `${id}: ${vcpus} × ${cpu}${o.kernelHashes ? ', kernel hashes' : ''}${o.features ? `, features 0x${o.features.toString(16)}` : ''}`);
    }
    if (id === 'N2') t.ok(l.updateCalls > (2 * 1024 * 1024) / 4096 / SNP_UPDATE_PAGES, `KVM's partial progress was looped over (${l.updateCalls} LAUNCH_UPDATE calls)`);
    l.vm.destroy();
    t.equal(h.snpFirmware.size, 0, `${id}: nothing left`);
  }
});

t.test('SNP VMSA pages (2 vCPUs, EPYC-Milan, OVMF_CODE.fd): their SHA-384 as the vectors give', { skip: !existsSync(OVMF) && 'ovmf missing' }, async (t) => {
  const h = host();
  const fw = readFileSync(OVMF);
  const l = launch(h, fw);
  finish(h, l, fw, 2, 'EPYC-Milan');
  const sha = (pfn: number) => createHash('sha384').update(l.mem.guestReadPage(pfn)).digest('hex');
  const frame = VMSA_REGION_BASE / VMSA_SIZE;
  t.equal(sha(frame), '728af287318db5f3fc4d2357a969483c4225956dc555b514a78d64ee372112d13b3dca8afd02cdbd1c55697d8ce087f5', 'BSP');
  t.equal(sha(frame + 1), '24d6d6fe1cc2fd76d9504a2e411e2a1e229a6723c94521c373c21dd97514c44895fc07fea07e04b4186d90160c8dad0b', 'AP');
  t.notOk(l.mem.read(VMSA_REGION_BASE, VMSA_SIZE).equals(l.mem.guestReadPage(frame)), 'the host sees ciphertext');
  l.vm.destroy();
});

t.test('guest messages: a replayed or skipped sequence number is refused', { skip: !existsSync(OVMF) && 'ovmf missing' }, async (t) => {
  const h = host();
  const fw = readFileSync(OVMF);
  const l = launch(h, fw);
  finish(h, l, fw, 1, 'EPYC-v4');
  t.equal(report(h, l, 1n).length, 1184, 'request 1 answered');
  t.equal(kvmFwStatus(() => report(h, l, 1n)), FwStatus.INVALID_PARAM, 'request 1 again: refused');
  t.equal(kvmFwStatus(() => report(h, l, 5n)), FwStatus.INVALID_PARAM, 'request 5 (skipping 3): refused');
  t.equal(report(h, l, 3n).length, 1184, 'request 3 answered');
  const key = decodeSecretsPage(l.mem.guestRead(l.secretsGpa, 4096)).vmpcks[1];
  const forged = sealGuestMessage(Buffer.alloc(32, 1), { seqno: 1n, type: MsgType.REPORT_REQ, version: 1, vmpck: 1, payload: Buffer.alloc(96) });
  t.equal(kvmFwStatus(() => l.vm.snpGuestRequest(forged)), FwStatus.INVALID_PARAM, 'a message not sealed with the VMPCK: refused');
  t.ok(key.length === 32);
  l.vm.destroy();
});

t.test('LAUNCH_FINISH: ID block and ID auth checks; policy and private-memory rules', { skip: !existsSync(OVMF) && 'ovmf missing' }, async (t) => {
  const h = host();
  const fw = readFileSync(OVMF);
  const idKey = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
  const authorKey = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
  const measure = () => {
    const l = launch(h, fw);
    finish(h, l, fw, 1, 'EPYC-v4');
    const m = decodeSnpReport(report(h, l)).measurement;
    l.vm.destroy();
    return m;
  };
  const ld = measure();
  const block = (o: { ld?: Buffer; policy?: bigint }) => encodeIdBlock({ ld: o.ld ?? ld, familyId: Buffer.alloc(16, 1), imageId: Buffer.alloc(16, 2), version: 1, guestSvn: 3, policy: o.policy ?? 0x30000n });
  const attempt = (idBlock: Buffer, idAuth: Buffer, authorKeyEn = false) => {
    const l = launch(h, fw);
    const s = kvmFwStatus(() => finish(h, l, fw, 1, 'EPYC-v4', { idBlock, idAuth, authorKeyEn }));
    const r = s === 'ok' ? decodeSnpReport(report(h, l)) : null;
    l.vm.destroy();
    return { s, r };
  };
  const good = block({});
  const ok = attempt(good, buildIdAuth(good, idKey, authorKey), true);
  t.equal(ok.s, 'ok', 'an ID block for this measurement, signed, with an author key: the launch finishes');
  t.same([ok.r!.familyId[0], ok.r!.imageId[0], ok.r!.guestSvn, ok.r!.signerInfo & 1], [1, 2, 3, 1], 'the report carries family id, image id, guest SVN, author key enabled');
  t.notOk(ok.r!.idKeyDigest.equals(Buffer.alloc(48)), 'and the ID key digest');
  const other = block({ ld: Buffer.alloc(48, 5) });
  t.equal(attempt(other, buildIdAuth(other, idKey)).s, FwStatus.BAD_MEASUREMENT, 'another measurement: BAD_MEASUREMENT');
  const pol = block({ policy: 0x20000n });
  t.equal(attempt(pol, buildIdAuth(pol, idKey)).s, FwStatus.POLICY_FAILURE, 'another policy: POLICY_FAILURE');
  const auth = buildIdAuth(good, idKey);
  auth[0x40]! ^= 1;
  t.equal(attempt(good, auth).s, FwStatus.BAD_SIGNATURE, 'a bad signature: BAD_SIGNATURE');
  t.equal(attempt(good, buildIdAuth(good, idKey), true).s, FwStatus.BAD_SIGNATURE, 'author key enabled but none signed the ID key: BAD_SIGNATURE');
  t.equal(h.snpFirmware.size, 0, 'no context left');
  // Launch policy rules.
  t.equal(fwStatus(() => h.snpFirmware.launchStart({ policy: 0x10000n, gosvw: Buffer.alloc(16) })), FwStatus.POLICY_FAILURE, 'bit 17 clear');
  t.equal(fwStatus(() => h.snpFirmware.launchStart({ policy: 0x30000n | (1n << 30n), gosvw: Buffer.alloc(16) })), FwStatus.POLICY_FAILURE, 'an unknown policy bit');
  t.equal(fwStatus(() => h.snpFirmware.launchStart({ policy: 0x30000n | (2n << 8n), gosvw: Buffer.alloc(16) })), FwStatus.POLICY_FAILURE, 'ABI 2.0 above the firmware');
  // KVM: the range must be private.
  const vm = KvmSev.createVm(h, VmType.SNP);
  vm.init('KVM_SEV_INIT2');
  vm.snpLaunchStart({ policy: 0x30000n, gosvw: Buffer.alloc(16) });
  const mem = new GuestMemory(machineLayout(16 << 20, 0), h.mc);
  mem.asid = vm.asid;
  t.equal(kvmErrno(() => vm.snpLaunchUpdate(mem, { gpa: 0x1000, len: 0x1000 }, SnpPageType.NORMAL)), -22, 'LAUNCH_UPDATE of a shared page: -EINVAL');
  t.equal(kvmErrno(() => KvmSev.createVm(h, VmType.SNP).init('KVM_SEV_INIT2', { vmsaFeatures: 1 })), -22, 'user space may not set SNPActive');
  vm.destroy();
  for (const c of [h.snpFirmware.launchStart({ policy: 0x30000n, gosvw: Buffer.alloc(16) })]) h.snpFirmware.decommission(c);
});
