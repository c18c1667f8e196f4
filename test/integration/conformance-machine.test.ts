/**
 * The machine view libvirt reads between start and `cont` (docs/interface.md §15), sevd beside
 * the real QEMU 7.2 for the same configuration as libvirt builds it: q35, EPYC-Milan, 256 MiB,
 * 2 vCPUs (one socket each), OVMF as libvirt's pflash `-blockdev` pair, a virtio balloon.
 * Replies must be equal, byte for byte where nothing names the host; values that do (thread
 * ids, socket paths, TCG's filtered CPU features) are compared by shape or against QEMU's
 * unfiltered model expansion.
 */
import t from 'tap';
import { existsSync } from 'node:fs';
import { RawClient } from '../helpers/raw-client.js';
import { startSevd } from '../helpers/sevd-process.js';
import { qemuAvailable, startQemu } from '../helpers/qemu.js';

const OVMF = '/usr/share/OVMF/OVMF_CODE.fd';
const CPU0 = '/machine/unattached/device[0]';
const CPU1 = '/machine/unattached/device[2]';

async function ask(c: RawClient, cmd: string, args?: unknown): Promise<string> {
  c.send(JSON.stringify(args === undefined ? { execute: cmd } : { execute: cmd, arguments: args }));
  for (;;) {
    const line = await c.next(10000);
    if (!line.includes('"event"')) return line;
  }
}

const skip = !qemuAvailable() ? 'qemu-system-x86_64 is not installed' : !existsSync(OVMF) ? `${OVMF} is missing (Debian's ovmf)` : false;

t.test('machine view equals QEMU 7.2 for the same configuration', { skip }, async (t) => {
  const qemu = await startQemu([
    '-machine', 'pc-q35-7.2,accel=tcg,pflash0=libvirt-pflash0-format', '-cpu', 'EPYC-Milan', '-m', '256',
    '-smp', '2,sockets=2,cores=1,threads=1', '-S', '-nodefaults', '-display', 'none',
    '-blockdev', JSON.stringify({ driver: 'file', filename: OVMF, 'node-name': 'libvirt-pflash0-storage', 'auto-read-only': true, discard: 'unmap' }),
    '-blockdev', JSON.stringify({ 'node-name': 'libvirt-pflash0-format', 'read-only': true, driver: 'raw', file: 'libvirt-pflash0-storage' }),
    '-device', 'virtio-balloon-pci,id=balloon0,bus=pcie.0,addr=0x5',
  ], 'charmonitor');
  const sevd = await startSevd({
    qemuVersion: '7.2.0', websocket: false,
    guests: [{
      name: 'vm', paused: true, memory: '256M', smp: 2, cpu: 'EPYC-Milan', firmware: OVMF,
      'firmware-nodes': { format: 'libvirt-pflash0-format', storage: 'libvirt-pflash0-storage' },
      'sev-guest': { policy: 3 },
    }],
  });
  t.teardown(async () => {
    await qemu.stop();
    await sevd.stop();
  });
  const a = await RawClient.connect(qemu.qmpPath);
  const b = await RawClient.connect(sevd.guestQmp('vm'));
  await a.next();
  await b.next();
  await ask(a, 'qmp_capabilities');
  await ask(b, 'qmp_capabilities');
  const both = async (cmd: string, args?: unknown) => {
    const [ra, rb] = await Promise.all([ask(a, cmd, args), ask(b, cmd, args)]);
    return { qemu: ra, sevd: rb };
  };
  const identical = async (cmd: string, args?: unknown) => {
    const r = await both(cmd, args);
    t.equal(r.sevd, r.qemu, `${cmd} ${args ? JSON.stringify(args) : ''} byte-identical`);
  };

  await identical('query-hotpluggable-cpus');
  await identical('query-iothreads');
  await identical('query-balloon');
  await identical('balloon', { value: 134217728 });
  await identical('balloon', { value: 0 });
  await identical('query-balloon');
  await identical('query-named-block-nodes', { flat: true });
  await identical('query-named-block-nodes');
  await identical('query-block');
  await identical('qom-list', { path: '/machine/peripheral' });
  await identical('qom-list', { path: CPU0 });
  await identical('qom-list', { path: CPU1 });
  await identical('qom-list', { path: '/machine/nosuch' });
  await identical('qom-get', { path: CPU0, property: 'nosuch' });
  for (const p of ['type', 'family', 'model', 'stepping', 'model-id', 'vendor', 'level', 'xlevel', 'apic-id', 'hotplugged', 'realized', 'sse4.2', 'avx2', 'svm']) {
    await identical('qom-get', { path: CPU0, property: p });
  }
  await identical('qom-get', { path: CPU1, property: 'apic-id' });

  // Host-named values: the chardev's path, the vCPU threads.
  const ch = await both('query-chardev');
  const norm = (s: string) => s.replace(/"filename": "unix:[^"]*"/g, '"filename": "unix:PATH,server=on"');
  t.equal(norm(ch.sevd), norm(ch.qemu), 'query-chardev (socket path aside)');
  const cf = await both('query-cpus-fast');
  const tid = (s: string) => s.replace(/"thread-id": \d+, "props"/g, '"thread-id": TID, "props"');
  t.equal(tid(cf.sevd), tid(cf.qemu), 'query-cpus-fast (thread ids aside)');

  // Every bool feature as the model defines it: TCG filters some, so QEMU's side is its
  // unfiltered model expansion (what KVM gives on a host that has the model's features).
  const list = JSON.parse((await both('qom-list', { path: CPU0 })).sevd).return as { name: string; type: string }[];
  const exp = JSON.parse(await ask(a, 'query-cpu-model-expansion', { type: 'full', model: { name: 'EPYC-Milan' } })).return.model.props;
  let compared = 0;
  const wrong: string[] = [];
  for (const p of list.filter((x) => x.type === 'bool' && x.name in exp && x.name !== 'realized')) {
    const v = JSON.parse(await ask(b, 'qom-get', { path: CPU0, property: p.name })).return;
    compared++;
    if (v !== exp[p.name]) wrong.push(`${p.name}: ${v} vs ${exp[p.name]}`);
  }
  t.same(wrong, [], `${compared} bool vCPU properties equal QEMU's EPYC-Milan expansion`);
  t.ok(compared > 350, 'libvirt reads hundreds of them');
  t.same(JSON.parse(await ask(b, 'qom-get', { path: CPU0, property: 'unavailable-features' })).return, [], 'nothing filtered on the emulated host');
  await a.close();
  await b.close();
});
