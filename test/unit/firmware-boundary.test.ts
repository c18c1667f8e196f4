/**
 * The firmware boundary (issue 22): faults and metrics wrap firmware commands by table, and
 * before that table was typed a new method left off a string list escaped both silently.
 * Here every method on each firmware class's prototype must be a command of its table or a
 * helper named as such, and the boundary must wrap every command of the table.
 */
import t from 'tap';
import { SevDevice } from '../../server/firmware/sev-device.js';
import { GuestFirmware } from '../../server/firmware/guest-firmware.js';
import { SnpGuestFirmware } from '../../server/firmware/snp-guest-firmware.js';
import { SendReceive } from '../../server/firmware/send-receive.js';
import {
  DEVICE_COMMANDS, DEVICE_HELPERS, GUEST_COMMANDS, GUEST_HELPERS, SEND_RECEIVE_COMMANDS, SEND_RECEIVE_HELPERS,
  SNP_GUEST_COMMANDS, SNP_GUEST_HELPERS,
} from '../../server/firmware/commands.js';
import { SEV_COMMANDS, FirmwareError, FwStatus } from '../../server/firmware/status.js';
import { instrumentFirmware } from '../../server/observability/instrument.js';
import { Metrics } from '../../server/observability/metrics.js';
import { FaultRegistry } from '../../server/faults/fault-registry.js';
import { fwHost } from '../helpers/fw-hosts.js';

/** The methods a class's prototype has (getters and the constructor are not methods). */
function prototypeMethods(cls: { prototype: object }): string[] {
  return Object.entries(Object.getOwnPropertyDescriptors(cls.prototype))
    .filter(([name, d]) => name !== 'constructor' && typeof d.value === 'function')
    .map(([name]) => name);
}

const classes: { cls: { name: string; prototype: object }; commands: Record<string, string>; helpers: readonly string[] }[] = [
  { cls: SevDevice, commands: DEVICE_COMMANDS, helpers: DEVICE_HELPERS },
  { cls: GuestFirmware, commands: GUEST_COMMANDS, helpers: GUEST_HELPERS },
  { cls: SnpGuestFirmware, commands: SNP_GUEST_COMMANDS, helpers: SNP_GUEST_HELPERS },
  { cls: SendReceive, commands: SEND_RECEIVE_COMMANDS, helpers: SEND_RECEIVE_HELPERS },
];

t.test('every method of a firmware class is a command of its table or a named helper', async (t) => {
  for (const { cls, commands, helpers } of classes) {
    const methods = prototypeMethods(cls);
    t.ok(methods.length > 3, `${cls.name}: the prototype scan sees methods`);
    const unlisted = methods.filter((m) => !(m in commands) && !helpers.includes(m));
    t.same(unlisted, [], `${cls.name}: no method escapes the boundary`);
    t.same(Object.keys(commands).filter((m) => !methods.includes(m)), [], `${cls.name}: every table entry is a method`);
    t.same(helpers.filter((m) => m in commands || !methods.includes(m)), [], `${cls.name}: helpers are methods, and not commands`);
    t.same(Object.values(commands).filter((c) => !(SEV_COMMANDS as readonly string[]).includes(c)), [], `${cls.name}: SEV API names`);
  }
  // The scan itself can fail: a method on no list is found.
  class Extended extends SevDevice {}
  (Extended.prototype as unknown as Record<string, unknown>)['pdhGenTwice'] = () => undefined;
  t.same(prototypeMethods(Extended).filter((m) => !(m in DEVICE_COMMANDS) && !(DEVICE_HELPERS as readonly string[]).includes(m)), ['pdhGenTwice']);
});

t.test('the boundary wraps every command of a table, counts it and applies its faults', async (t) => {
  const h = fwHost();
  const metrics = new Metrics();
  const faults = new FaultRegistry(() => undefined, metrics);
  const objects = [
    { raw: new SevDevice(h.platform), commands: DEVICE_COMMANDS as Record<string, string> },
    { raw: h.fw, commands: GUEST_COMMANDS },
    { raw: new SnpGuestFirmware(h.platform, h.mc), commands: SNP_GUEST_COMMANDS },
    { raw: h.sr, commands: SEND_RECEIVE_COMMANDS },
  ];
  for (const { raw, commands } of objects) {
    const wrapped = instrumentFirmware(raw as object, commands as Record<never, never>, { metrics, faults }) as Record<string, unknown>;
    const bare = raw as unknown as Record<string, unknown>;
    t.same(Object.keys(commands).filter((m) => wrapped[m] === bare[m]), [], `${raw.constructor.name}: every command wrapped`);
  }
  const device = instrumentFirmware(new SevDevice(h.platform), DEVICE_COMMANDS, { metrics, faults });
  device.status();
  t.match(metrics.render(), /sevd_firmware_commands_total\{command="PLATFORM_STATUS",status="SUCCESS"\} 1\n/, 'counted by its SEV API name');
  faults.add({ target: 'firmware', command: 'GET_ID', status: FwStatus.HWERROR_PLATFORM });
  let thrown: unknown;
  try {
    device.getId();
  } catch (e) {
    thrown = e;
  }
  t.ok(thrown instanceof FirmwareError && thrown.command === 'GET_ID' && thrown.status === FwStatus.HWERROR_PLATFORM, 'a firmware fault replaces the outcome');
  t.match(metrics.render(), /command="GET_ID",status="19"\} 1\n/, 'and counts as that status');
});
