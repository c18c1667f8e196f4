/**
 * QEMU's view of the machine that libvirt reads between start and `cont` (docs/interface.md
 * §15): chardevs, hotpluggable vCPU slots, QOM, iothreads, the balloon and the block layer
 * (qapi/char.json, machine.json, qom.json, misc.json, block-core.json and block.json of
 * QEMU 7.2; members sevd never fills are left out, as optional ones QEMU omits too).
 */
import type { Expr } from './defs.js';

export const machineSchema = [
  { struct: 'ChardevInfo', data: { label: 'str', filename: 'str', 'frontend-open': 'bool' } },
  { command: 'query-chardev', readOnly: true, returns: ['ChardevInfo'], monitors: ['guest'] },
  {
    struct: 'CpuInstanceProperties',
    data: { '*node-id': 'int', '*socket-id': 'int', '*die-id': 'int', '*cluster-id': { type: 'int', since: '7.1.0' }, '*core-id': 'int', '*thread-id': 'int' },
  },
  { struct: 'HotpluggableCPU', data: { type: 'str', 'vcpus-count': 'int', props: 'CpuInstanceProperties', '*qom-path': 'str' } },
  { command: 'query-hotpluggable-cpus', readOnly: true, returns: ['HotpluggableCPU'], monitors: ['guest'] },
  { struct: 'ObjectPropertyInfo', data: { name: 'str', type: 'str', '*description': 'str', '*default-value': 'any' } },
  { command: 'qom-list', readOnly: true, data: { path: 'str' }, returns: ['ObjectPropertyInfo'], monitors: ['guest'] },
  { command: 'qom-get', readOnly: true, data: { path: 'str', property: 'str' }, returns: 'any', monitors: ['guest'] },
  {
    struct: 'IOThreadInfo',
    data: { id: 'str', 'thread-id': 'int', 'poll-max-ns': 'int', 'poll-grow': 'int', 'poll-shrink': 'int', 'aio-max-batch': 'int' },
  },
  { command: 'query-iothreads', readOnly: true, returns: ['IOThreadInfo'], monitors: ['guest'] },
  // Not readOnly: it sets the balloon's target.
  { command: 'balloon', data: { value: 'int' }, monitors: ['guest'] },
  { struct: 'BalloonInfo', data: { actual: 'int' } },
  { command: 'query-balloon', readOnly: true, returns: 'BalloonInfo', monitors: ['guest'] },
  {
    struct: 'ImageInfo',
    data: {
      filename: 'str', format: 'str', '*dirty-flag': 'bool', '*actual-size': 'int', 'virtual-size': 'int',
      '*cluster-size': 'int', '*encrypted': 'bool', '*compressed': 'bool', '*backing-filename': 'str',
      '*full-backing-filename': 'str', '*backing-filename-format': 'str',
    },
  },
  { struct: 'BlockdevCacheInfo', data: { writeback: 'bool', direct: 'bool', 'no-flush': 'bool' } },
  { enum: 'BlockdevDetectZeroesOptions', data: ['off', 'on', 'unmap'] },
  {
    struct: 'BlockDeviceInfo',
    data: {
      file: 'str', '*node-name': 'str', ro: 'bool', drv: 'str', '*backing_file': 'str', backing_file_depth: 'int',
      encrypted: 'bool', detect_zeroes: 'BlockdevDetectZeroesOptions', bps: 'int', bps_rd: 'int', bps_wr: 'int',
      iops: 'int', iops_rd: 'int', iops_wr: 'int', image: 'ImageInfo', cache: 'BlockdevCacheInfo', write_threshold: 'int',
    },
  },
  { command: 'query-named-block-nodes', readOnly: true, data: { '*flat': 'bool' }, returns: ['BlockDeviceInfo'], monitors: ['guest'] },
  {
    struct: 'BlockInfo',
    data: { device: 'str', '*qdev': 'str', type: 'str', removable: 'bool', locked: 'bool', '*inserted': 'BlockDeviceInfo', '*tray_open': 'bool' },
  },
  { command: 'query-block', readOnly: true, returns: ['BlockInfo'], monitors: ['guest'] },
  // qapi/run-state.json: what the guest's reboot, shutdown, panic and watchdog do (libvirt's on_* settings).
  { enum: 'RebootAction', data: ['reset', 'shutdown'] },
  { enum: 'ShutdownAction', data: ['poweroff', 'pause'] },
  { enum: 'PanicAction', data: ['pause', 'shutdown', { name: 'exit-failure', since: '7.1.0' }, 'none'] },
  { enum: 'WatchdogAction', data: ['reset', 'shutdown', 'poweroff', 'pause', 'debug', 'none', 'inject-nmi'] },
  {
    command: 'set-action',
    since: '6.0.0',
    data: { '*reboot': 'RebootAction', '*shutdown': 'ShutdownAction', '*panic': 'PanicAction', '*watchdog': 'WatchdogAction' },
    monitors: ['guest'],
  },
] as const satisfies readonly Expr[];
