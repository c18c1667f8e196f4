#!/usr/bin/env node
/**
 * sevd-qemu: the emulator libvirt execs for an SEV domain on a sevd host (docs/interface.md
 * §15). It behaves as qemu-system-x86_64 does for libvirt: the capability probe is relayed
 * to the real QEMU with sevd's SEV answers; a domain start creates the guest over sevd's
 * launch socket and serves libvirt's monitor chardev from it. A separate program: it talks
 * to sevd only over the launch socket.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { loadConfig, type LauncherConfig } from './config.js';
import { isProbe, parseOptions, QemuUsageError } from './qemu-args.js';
import { daemonize, runProbeDaemon } from './probe.js';
import { runDomain } from './domain.js';

const PROG = 'qemu-system-x86_64';

function fail(message: string): never {
  process.stderr.write(`${PROG}: ${message}\n`);
  process.exit(1);
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  let config: LauncherConfig;
  try {
    config = loadConfig();
  } catch (e) {
    fail(`sevd-qemu config: ${(e as Error).message}`);
  }
  let opts;
  try {
    opts = parseOptions(argv);
  } catch (e) {
    if (e instanceof QemuUsageError) fail(e.message);
    throw e;
  }
  // -version / -help: the real binary's (libvirt and people read them).
  if (opts.some((o) => ['version', 'help', 'h'].includes(o.name))) {
    const r = spawnSync(config.qemu, argv, { stdio: 'inherit' });
    process.exit(r.status ?? 1);
  }
  if (isProbe(opts)) {
    const daemon = opts.some((o) => o.name === 'daemonize');
    if (daemon && process.env['SEVD_QEMU_DAEMON'] !== '1') process.exit(await daemonize(fileURLToPath(import.meta.url), argv));
    await runProbeDaemon(argv, opts, config, (error) => {
      if (process.send) {
        process.send(error ? { error: `${PROG}: ${error}` } : {});
        process.disconnect?.();
      } else if (error) fail(error);
    });
    return;
  }
  try {
    process.exit(await runDomain(opts, config));
  } catch (e) {
    if (e instanceof QemuUsageError) fail(e.message);
    fail((e as Error).message);
  }
}

void main();
