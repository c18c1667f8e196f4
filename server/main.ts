#!/usr/bin/env node
/** sevd's command line: flags → config → daemon; exit 2 on a bad config. */
import { pino } from 'pino';
import { ConfigError, loadConfig, parseFlags, usage } from './config/config.js';
import { Daemon } from './daemon/daemon.js';

async function main(): Promise<number> {
  let daemon: Daemon;
  try {
    const flags = parseFlags(process.argv.slice(2));
    if (flags.help) {
      process.stdout.write(usage());
      return 0;
    }
    const { config, source } = loadConfig(flags);
    const log = pino({ level: config.logLevel, base: { pid: process.pid } });
    daemon = new Daemon(config, log, source);
    await daemon.start();
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(e.message + '\n');
      return e.exitCode;
    }
    process.stderr.write(`sevd: start-up failed: ${(e as Error).message}\n`);
    return 1;
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
