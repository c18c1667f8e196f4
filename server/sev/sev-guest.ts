/**
 * One guest's SEV state as QEMU's target/i386/sev.c keeps it: the launch flow at machine
 * init (LAUNCH_START, ACTIVATE, LAUNCH_UPDATE_DATA of the firmware and the kernel hashes,
 * LAUNCH_MEASURE), LAUNCH_FINISH on the first run, the SevState seen over QMP, and teardown.
 */
import { readFileSync } from 'node:fs';
import { FirmwareError, FwStatus } from '../firmware/status.js';
import { fwCall } from './fw-call.js';
import { Policy } from '../firmware/guest-firmware.js';
import { glibBase64Decode } from '../dispatch/glib-base64.js';
import { QmpError } from '../qmp/errors.js';
import { strerror } from '../util/strerror.js';
import { buildKernelHashesTable, PADDED_TABLE_SIZE } from '../../abi/kernel-hashes.js';
import { findEntry, readBaseSize, SEV_HASH_TABLE_BLOCK_GUID, SEV_SECRET_BLOCK_GUID } from '../../abi/ovmf-table.js';
import type { Guest } from '../guest/guest.js';
import type { SevHost } from './sev-host.js';

export const SEV_STATES = ['uninit', 'launch-update', 'launch-secret', 'running', 'send-update', 'receive-update'] as const;
export type SevState = (typeof SEV_STATES)[number];

export interface SevGuestSpec {
  policy: number;
  handle: number;
  dhCertFile: string | null;
  sessionFile: string | null;
  cbitpos: number | null;
  reducedPhysBits: number | null;
  kernelHashes: boolean;
}

export class SevGuest {
  state: SevState = 'uninit';
  /** The firmware handle (QEMU updates the `handle` property with it). */
  handle: number;
  policy: number;
  asid: number | null = null;
  /** PLATFORM_STATUS values read when the guest was created. */
  readonly api: { major: number; minor: number; build: number };
  /** base64 of MEASURE ‖ MNONCE, taken once at machine init. */
  measurement: string | null = null;
  /** gpa of the last successful sev-inject-launch-secret. */
  lastSecretGpa: number | null = null;
  lastSecretLen = 0;

  constructor(readonly guest: Guest, readonly spec: SevGuestSpec, private readonly host: SevHost) {
    this.handle = spec.handle;
    this.policy = spec.policy;
    // QEMU's startup checks, in order (qmp-protocol.md §15).
    const requested = spec.cbitpos ?? host.cbitpos;
    if (requested !== host.cbitpos) {
      throw QmpError.generic(`sev_common_kvm_init: cbitpos check failed, host '${host.cbitpos}' requested '${requested}'`);
    }
    const rpb = spec.reducedPhysBits ?? host.reducedPhysBits;
    if (rpb < 1 || rpb > 63) {
      throw QmpError.generic(`sev_common_kvm_init: reduced_phys_bits check failed, it should be in the range of 1 to 63, requested '${rpb}'`);
    }
    const st = host.device.status();
    this.api = { major: st.apiMajor, minor: st.apiMinor, build: st.build };
    if (spec.policy & Policy.ES && !st.es) {
      throw QmpError.generic('sev_common_kvm_init: guest policy requires SEV-ES, but host SEV-ES support unavailable');
    }
  }

  get fw() {
    return this.host.firmware;
  }

  get sevStateCode(): number {
    return SEV_STATES.indexOf(this.state);
  }

  /** Everything up to machine-init-done; on failure nothing is left behind. */
  launch(): void {
    const godh = readB64File(this.spec.dhCertFile);
    const session = readB64File(this.spec.sessionFile);
    const asid = this.host.asids.allocate();
    if (asid === undefined) throw QmpError.generic("sev_common_kvm_init: failed to initialize ret=-16 fw_error=0 ''");
    this.asid = asid;
    try {
      this.handle = fwCall(() => this.fw.launchStart({ handle: this.spec.handle, policy: this.policy, godh, session }));
      this.state = 'launch-update';
      this.fw.activate(this.handle, asid);
      const mem = this.guest.memory;
      mem.asid = asid;
      mem.setDefaultPrivate();
      const flash = mem.regions.find((r) => r.name === 'system.flash0');
      if (flash) fwCall(() => this.fw.launchUpdateData(this.handle, mem, flash.base, flash.size));
      if (this.spec.kernelHashes && this.guest.config.kernel) this.measureKernelHashes();
      const blob = fwCall(() => this.measureWithLengthQuery());
      this.measurement = blob.toString('base64');
      this.state = 'launch-secret';
    } catch (e) {
      this.destroy();
      throw e;
    }
  }

  private measureWithLengthQuery(): Buffer {
    let len = 0;
    try {
      this.fw.launchMeasure(this.handle, null);
    } catch (e) {
      if (!(e instanceof FirmwareError) || e.status !== FwStatus.INVALID_LEN) throw e;
      len = e.lengths['len']!;
    }
    return this.fw.launchMeasure(this.handle, { len });
  }

  private measureKernelHashes(): void {
    const area = readBaseSize(findEntry(this.guest.ovmfEntries, SEV_HASH_TABLE_BLOCK_GUID));
    if (!area) throw QmpError.generic('SEV: kernel specified but guest firmware has no hashes table GUID');
    if (area.base === 0 || area.size < PADDED_TABLE_SIZE) {
      throw QmpError.generic(`SEV: guest firmware hashes table area is invalid (base=0x${area.base.toString(16)} size=0x${area.size.toString(16)})`);
    }
    const read = (p: string | null) => {
      if (p === null) return null;
      try {
        return readFileSync(p);
      } catch (e) {
        throw QmpError.generic(`could not load kernel '${p}': ${strerror(e)}`);
      }
    };
    const c = this.guest.config;
    const table = buildKernelHashesTable(read(c.kernel)!, read(c.initrd), c.append);
    this.guest.memory.write(area.base, table);
    fwCall(() => this.fw.launchUpdateData(this.handle, this.guest.memory, area.base, PADDED_TABLE_SIZE));
  }

  /** First transition to running: LAUNCH_FINISH, or RECEIVE_FINISH after an incoming migration. */
  beforeFirstRun(): void {
    if (this.state === 'launch-secret') {
      fwCall(() => this.fw.launchFinish(this.handle));
      this.state = 'running';
    } else if (this.state === 'receive-update') {
      fwCall(() => this.host.sendReceive.receiveFinish(this.handle));
      this.state = 'running';
    }
  }

  get sr() {
    return this.host.sendReceive;
  }

  /** True once SEND_FINISH ran: the context may never run on this host again. */
  get sentAway(): boolean {
    return this.fw.contexts.peek(this.handle)?.state === 6;
  }

  /** Destination (QEMU §17.2): RECEIVE_START with the stream's policy, PDH and session, then ACTIVATE. */
  receiveStart(policy: number, sourcePdh: Buffer, session: Buffer): void {
    const asid = this.host.asids.allocate();
    if (asid === undefined) throw QmpError.generic("sev_common_kvm_init: failed to initialize ret=-16 fw_error=0 ''");
    this.asid = asid;
    try {
      this.handle = fwCall(() => this.sr.receiveStart({ handle: this.spec.handle, policy, pdh: sourcePdh, session }));
      this.policy = policy;
      this.state = 'receive-update';
      this.fw.activate(this.handle, asid);
      this.guest.memory.asid = asid;
      this.guest.memory.setDefaultPrivate();
    } catch (e) {
      this.destroy();
      throw e;
    }
  }

  /** A half-received guest is dropped: firmware context, ASID and memory. */
  discardIncoming(): void {
    this.destroy();
    this.guest.memory.discard();
    this.state = 'uninit';
    this.handle = this.spec.handle;
    this.policy = this.spec.policy;
  }

  /** The SEV secret area as the guest's firmware publishes it (interface.md §8). */
  secretArea(): { base: number; size: number } | undefined {
    const block = readBaseSize(findEntry(this.guest.ovmfEntries, SEV_SECRET_BLOCK_GUID));
    if (block && block.size > 0) return block;
    if (this.lastSecretGpa !== null) return { base: this.lastSecretGpa, size: this.lastSecretLen };
    return undefined;
  }

  /** The host's view for dumps: DBG_DECRYPT when the policy allows debugging, else ciphertext. */
  hostRead(gpa: number, len: number): Buffer {
    const mem = this.guest.memory;
    if (this.policy & Policy.NODBG || this.asid === null || !mem.isMapped(gpa)) return mem.read(gpa, len);
    const start = gpa - (gpa % 16);
    const end = Math.ceil((gpa + len) / 16) * 16;
    if (!mem.regionOf(start, end - start)) return mem.read(gpa, len);
    try {
      const plain = this.fw.dbgDecrypt(this.handle, mem, start, end - start);
      return plain.subarray(gpa - start, gpa - start + len);
    } catch (e) {
      if (e instanceof FirmwareError) return mem.read(gpa, len);
      throw e;
    }
  }

  /** DEACTIVATE, DECOMMISSION, ASID back to the pool (guest teardown). */
  destroy(): void {
    const ctx = this.fw.contexts.peek(this.handle);
    if (ctx && this.asid !== null && ctx.asid === this.asid) this.fw.deactivate(this.handle);
    if (ctx && this.state !== 'uninit') this.fw.decommission(this.handle);
    this.state = 'uninit';
    if (this.asid !== null) this.host.asids.release(this.asid);
    this.asid = null;
    this.guest.memory.asid = null;
  }

  /** `info sev` lines (qmp-protocol.md §11). */
  infoLines(modern: boolean): string[] {
    const lines = [
      `state: ${this.state}`,
      `build: ${this.api.build}`,
      `api version: ${this.api.major}.${this.api.minor}`,
      `handle: ${this.handle}`,
      `debug: ${this.policy & Policy.NODBG ? 'off' : 'on'}`,
      `key-sharing: ${this.policy & Policy.NOKS ? 'off' : 'on'}`,
    ];
    if (modern) return ['SEV type: sev', ...lines];
    return [lines[3]!, ...lines.slice(0, 3), ...lines.slice(4)];
  }
}

function readB64File(path: string | null): Buffer | null {
  if (path === null) return null;
  let text: string;
  try {
    text = readFileSync(path, 'latin1');
  } catch (e) {
    throw QmpError.generic(`SEV: Failed to read '${path}' (Failed to open file “${path}”: ${strerror(e)})`);
  }
  return glibBase64Decode(text);
}

