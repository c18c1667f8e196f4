/** The real QEMU from Debian's qemu-system-x86, started as the protocol reference. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const QEMU_BINARY = 'qemu-system-x86_64';

export function qemuAvailable(): boolean {
  return spawnSync(QEMU_BINARY, ['--version'], { stdio: 'ignore' }).status === 0;
}

export interface QemuProcess {
  proc: ChildProcess;
  qmpPath: string;
  stop(): Promise<void>;
}

/**
 * `args` replaces the default machine options; the QMP socket is always added, as `-qmp`
 * or, given `chardev`, as libvirt adds it (`-chardev socket,id=…` and `-mon`).
 */
export async function startQemu(args = ['-machine', 'q35,accel=tcg', '-S', '-nodefaults', '-display', 'none'], chardev?: string): Promise<QemuProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'sevd-qemu-'));
  const qmpPath = join(dir, 'qmp.sock');
  const proc = spawn(
    QEMU_BINARY,
    [...args, ...(chardev
      ? ['-chardev', `socket,id=${chardev},path=${qmpPath},server=on,wait=off`, '-mon', `chardev=${chardev},id=monitor,mode=control`]
      : ['-qmp', `unix:${qmpPath},server=on,wait=off`])],
    { stdio: 'ignore' },
  );
  const deadline = Date.now() + 15000;
  while (!existsSync(qmpPath)) {
    if (proc.exitCode !== null) throw new Error(`qemu exited with ${proc.exitCode}`);
    if (Date.now() > deadline) throw new Error('qemu did not create its QMP socket');
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    proc,
    qmpPath,
    async stop() {
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGKILL');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
