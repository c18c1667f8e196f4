/** Emulated hosts in one process (platform, memory controller, firmware) for firmware-level tests and benchmarks. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Platform } from '../../server/firmware/platform.js';
import { GuestFirmware } from '../../server/firmware/guest-firmware.js';
import { SendReceive } from '../../server/firmware/send-receive.js';
import { MemoryController } from '../../server/memory/memory-controller.js';
import { GuestMemory } from '../../server/memory/guest-memory.js';
import { machineLayout } from '../../server/guest/layout.js';

export type FwHost = ReturnType<typeof fwHost>;

export function fwHost(generation: 'milan' | 'rome' = 'milan', apiMinor = 55, memBytes = 16 << 20) {
  const platform = new Platform({ generation, apiMajor: 1, apiMinor, build: 21, seed: null, stateDir: mkdtempSync(join(tmpdir(), 'sevd-sr-')) });
  platform.init();
  const mc = new MemoryController();
  const fw = new GuestFirmware(platform, mc, { maxAsid: 8, minSevAsid: 1 });
  return { platform, mc, fw, sr: new SendReceive(fw), mem: () => new GuestMemory(machineLayout(memBytes, 0), mc) };
}

/** The target arguments of SEND_START for host `h` (its PDH, PEK ‖ OCA ‖ CEK, ASK ‖ ARK). */
export function targetOf(h: FwHost) {
  const c = h.platform.certificates();
  return { pdh: c.pdh, platCerts: Buffer.concat([c.pek, c.oca, c.cek]), amdCerts: Buffer.concat([h.platform.emulatedRoot.ask, h.platform.emulatedRoot.ark]) };
}

/** A launched, running guest with private memory (no session: random TEK/TIK). */
export function runningGuest(h: FwHost, policy: number, asid = 1) {
  const handle = h.fw.launchStart({ handle: 0, policy, godh: null, session: null });
  const m = h.mem();
  h.fw.activate(handle, asid);
  m.asid = asid;
  m.setDefaultPrivate();
  h.fw.launchMeasure(handle, { len: 48 });
  h.fw.launchFinish(handle);
  return { handle, m };
}

/** The receiving half: RECEIVE_START for a SEND_START session from `from`, guest memory bound to `asid`. */
export function receivingGuest(h: FwHost, from: FwHost, start: { session: Buffer; policy: number }, asid = 1) {
  const handle = h.sr.receiveStart({ handle: 0, policy: start.policy, pdh: from.platform.certificates().pdh, session: start.session });
  const m = h.mem();
  h.fw.activate(handle, asid);
  m.asid = asid;
  m.setDefaultPrivate();
  return { handle, m };
}
