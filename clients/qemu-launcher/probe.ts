/**
 * libvirt's capability probe (docs/interface.md §15): relayed to the real QEMU, so every
 * answer stays true for the installed binary, with the SEV part from sevd: the
 * `query-sev-capabilities` request is answered over the launch socket (when sevd is not
 * reachable, QEMU's own answer — "no SEV" — goes through). QEMU's -daemonize behaviour:
 * the parent returns once the monitor listens, the daemon has no stdio, writes the
 * pidfile, and SIGTERM ends it and the QEMU behind it, removing the socket and pidfile.
 */
import net from 'node:net';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LaunchConnection } from './launch-connection.js';
import { probeLine, QemuUsageError, type Option } from './qemu-args.js';
import type { LauncherConfig } from './config.js';

/** The real QEMU's command line: the same, but its QMP socket private and no daemonizing. */
function relayArgs(argv: readonly string[], privatePath: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!.replace(/^--/, '-');
    if (a === '-daemonize') continue;
    if (a === '-pidfile') {
      i++;
      continue;
    }
    if (a === '-qmp') {
      out.push('-qmp', `unix:${privatePath},server=on,wait=off`);
      i++;
      continue;
    }
    out.push(argv[i]!);
  }
  return out;
}

/** sevd's reply line (QEMU's format), or null when sevd cannot say. */
async function sevCapabilities(config: LauncherConfig): Promise<string | null> {
  try {
    const c = await LaunchConnection.connect(config.launchSocket);
    try {
      await c.negotiate();
      const r = await c.execute('query-sev-capabilities');
      return r['error'] ? null : c.lastLine;
    } finally {
      c.close();
    }
  } catch {
    return null;
  }
}

/** One libvirt connection: lines to QEMU, except the SEV question. */
function relay(client: net.Socket, privatePath: string, config: LauncherConfig): void {
  const qemu = net.connect(privatePath);
  qemu.on('error', () => client.destroy());
  client.on('error', () => qemu.destroy());
  qemu.on('close', () => client.destroy());
  client.on('close', () => qemu.destroy());
  qemu.pipe(client);
  let buf = '';
  let chain = Promise.resolve();
  client.setEncoding('utf8');
  client.on('data', (d: string) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i + 1);
      buf = buf.slice(i + 1);
      chain = chain.then(async () => {
        let msg: Record<string, unknown> | null = null;
        try {
          msg = JSON.parse(line) as Record<string, unknown>;
        } catch {
          // QEMU answers what it cannot parse.
        }
        if (msg?.['execute'] === 'query-sev-capabilities') {
          const r = await sevCapabilities(config);
          if (r) {
            // QEMU writes "return" before "id": sevd's line with the request's id appended.
            const id = msg['id'] !== undefined ? `, "id": ${JSON.stringify(msg['id'])}` : '';
            client.write(`${r.slice(0, -1)}${id}}\r\n`);
            return;
          }
        }
        qemu.write(line);
      });
    }
  });
}

/** The daemon half: the real QEMU behind a relay on libvirt's socket. */
export async function runProbeDaemon(argv: readonly string[], opts: Option[], config: LauncherConfig, ready: (err?: string) => void): Promise<void> {
  const p = probeLine(opts);
  const dir = mkdtempSync(join(tmpdir(), 'sevd-qemu-probe-'));
  const privatePath = join(dir, 'qmp.sock');
  const qemu: ChildProcess = spawn(config.qemu, relayArgs(argv, privatePath), { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  qemu.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const cleanup = () => {
    for (const f of [p.qmpPath, ...(p.pidfile ? [p.pidfile] : [])]) {
      try {
        unlinkSync(f);
      } catch {
        // gone already
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };
  qemu.once('exit', (code) => {
    if (!started) ready(stderr.trim() || `${config.qemu} exited with ${code}`);
    cleanup();
    process.exit(started ? 0 : 1);
  });
  let started = false;
  for (let t = 0; !existsSync(privatePath); t++) {
    if (qemu.exitCode !== null || t > 600) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  try {
    unlinkSync(p.qmpPath);
  } catch {
    // not there
  }
  const server = net.createServer((c) => relay(c, privatePath, config));
  await new Promise<void>((resolve) => server.listen(p.qmpPath, resolve));
  if (p.pidfile) writeFileSync(p.pidfile, `${process.pid}\n`);
  started = true;
  const stop = () => {
    qemu.kill('SIGTERM');
    server.close();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  ready();
}

/** The parent half of -daemonize: start the daemon, wait until it listens, return its verdict. */
export function daemonize(script: string, argv: readonly string[]): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [script, ...argv], {
      detached: true,
      stdio: ['ignore', 'ignore', 'ignore', 'ipc'],
      env: { ...process.env, SEVD_QEMU_DAEMON: '1' },
    });
    child.once('message', (m: { error?: string }) => {
      if (m.error) process.stderr.write(m.error.endsWith('\n') ? m.error : m.error + '\n');
      child.disconnect();
      child.unref();
      resolve(m.error ? 1 : 0);
    });
    child.once('exit', (code) => resolve(code || 1));
  });
}

export { QemuUsageError };
