#!/usr/bin/env node
/** sevd's command line: flags → config → daemon; exit 2 on a bad config. */
import { ConfigError, loadConfig, parseFlags, PLATFORM_EXPORT_COMMAND, usage } from './config/config.js';
import { helpText } from '../cli/args.js';
import { makeLogger } from './observability/log.js';
import { Daemon, SEVD_VERSION } from './daemon/daemon.js';
import { StateFileError } from './firmware/nv-state.js';
import { exportPlatform } from './daemon/platform-export.js';
import { StartupError } from './daemon/dir-lock.js';
import { PersistError } from './util/state-file.js';

/** `sevd platform export --out DIR [--config FILE] [--state-dir DIR]`. */
function platformCommand(argv: string[]): number {
  if (argv[0] !== 'export') throw new ConfigError(`sevd: unknown command 'platform ${argv[0] ?? ''}' (see sevd --help)`);
  const rest = argv.slice(1);
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(helpText(PLATFORM_EXPORT_COMMAND));
    return 0;
  }
  const outAt = rest.indexOf('--out');
  const out = outAt >= 0 ? rest[outAt + 1] : undefined;
  const others = outAt >= 0 ? [...rest.slice(0, outAt), ...rest.slice(outAt + 2)] : rest;
  const flags = parseFlags(others, { ...PLATFORM_EXPORT_COMMAND, options: PLATFORM_EXPORT_COMMAND.options.filter((o) => o.name !== 'out') });
  if (!out) throw new ConfigError('sevd platform export: --out DIR is required');
  const { config } = loadConfig(flags);
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
    if (flags.version) {
      process.stdout.write(`sevd ${SEVD_VERSION}\n`);
      return 0;
    }
    const { config, source } = loadConfig(flags);
    const log = makeLogger(config.logLevel, flags.logFormat ?? (process.stdout.isTTY ? 'pretty' : 'json'));
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
