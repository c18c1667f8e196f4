#!/usr/bin/env node
/** sevd's command line: flags → config → daemon; exit 2 on a bad config. */
import { pino } from 'pino';
import { ConfigError, loadConfig, parseFlags, usage } from './config/config.js';
import { Daemon } from './daemon/daemon.js';
import { StateFileError } from './firmware/nv-state.js';
import { exportPlatform } from './daemon/platform-export.js';
import { StartupError } from './daemon/dir-lock.js';
import { PersistError } from './util/state-file.js';

/** `sevd platform export --out DIR [config flags]`. */
function platformCommand(argv: string[]): number {
  const outAt = argv.indexOf('--out');
  if (argv[0] !== 'export' || outAt < 0 || !argv[outAt + 1]) {
    process.stderr.write('usage: sevd platform export --out DIR [--config FILE] [--state-dir DIR]\n');
    return 2;
  }
  const out = argv[outAt + 1]!;
  const rest = argv.slice(1).filter((_, i) => i + 1 !== outAt && i + 1 !== outAt + 1);
  const { config } = loadConfig(parseFlags(rest));
  const files = exportPlatform(config, out);
  process.stdout.write(`wrote ${files.join(' ')} to ${out}\n`);
  return 0;
}

function startupError(e: unknown): number {
  if (e instanceof ConfigError || e instanceof StartupError) {
    process.stderr.write(e.message + '\n');
    return e.exitCode;
  }
  if (e instanceof PersistError) {
    // The first start on a state directory writes the new identity.
    process.stderr.write(`sevd: ${e.message}\n`);
    return 2;
  }
  if (e instanceof StateFileError) {
    process.stderr.write(`sevd: ${e.message}\n`);
    return 1;
  }
  process.stderr.write(`sevd: start-up failed: ${(e as Error).message}\n`);
  return 1;
}

async function main(): Promise<number> {
  let daemon: Daemon;
  try {
    const argv = process.argv.slice(2);
    if (argv[0] === 'platform') return platformCommand(argv.slice(1));
    const flags = parseFlags(argv);
    if (flags.help) {
      process.stdout.write(usage());
      return 0;
    }
    const { config, source } = loadConfig(flags);
    const log = pino({ level: config.logLevel, base: { pid: process.pid } });
    daemon = await Daemon.open(config, log, source);
    await daemon.start();
  } catch (e) {
    return startupError(e);
  }
  for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => void daemon.shutdown('host-signal'));
  await daemon.done;
  return 0;
}

main().then((code) => {
  process.exitCode = code;
  // Let pino flush; nothing else should keep the loop alive after shutdown.
  setTimeout(() => process.exit(code), 200).unref();
});
