/** Starts the real daemon (dist/server/main.js) as a child process with temporary directories. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const MAIN = resolve('dist/server/main.js');

/** The account the privilege-drop tests run sevd as. */
export const NOBODY = { uid: 65534, gid: 65534 };

/** Whether `nobody` can read the compiled daemon (a checkout under a private directory cannot). */
export function nobodyCanRead(): boolean {
  const r = spawnSync(process.execPath, ['-e', `require('fs').accessSync(${JSON.stringify(MAIN)}, 4); require('fs').accessSync(${JSON.stringify(resolve('node_modules/fastify/package.json'))}, 4)`], { ...NOBODY });
  return r.status === 0;
}

export interface SevdProcess {
  proc: ChildProcess;
  dir: string;
  runDir: string;
  stateDir: string;
  controlPath: string;
  guestQmp(name: string): string;
  guestQga(name: string): string;
  wsPort: number | null;
  log: string[];
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export async function startSevd(config: Record<string, unknown> = {}, extraArgs: string[] = []): Promise<SevdProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'sevd-test-'));
  // A test may name its own directories (two daemons on one, a restart on the same).
  const runDir = typeof config['runDir'] === 'string' ? config['runDir'] : join(dir, 'run');
  const stateDir = typeof config['stateDir'] === 'string' ? config['stateDir'] : join(dir, 'state');
  const cfgPath = join(dir, 'config.json');
  writeFileSync(cfgPath, JSON.stringify({ runDir, stateDir, websocket: { port: 0 }, ...config }));
  const proc = spawn(process.execPath, [MAIN, '--config', cfgPath, ...extraArgs], { stdio: ['ignore', 'pipe', 'pipe'] });
  const log: string[] = [];
  let wsPort: number | null = null;
  await new Promise<void>((resolveReady, reject) => {
    let out = '';
    const onData = (d: Buffer) => {
      out += d.toString();
      let i;
      while ((i = out.indexOf('\n')) >= 0) {
        const line = out.slice(0, i);
        out = out.slice(i + 1);
        log.push(line);
        if (line.includes('"msg":"sevd ready"')) {
          const m = /"websocket":"wss?:\/\/[^"]*:(\d+)"/.exec(line);
          wsPort = m ? Number(m[1]) : null;
          clearTimeout(timer);
          resolveReady();
        }
      }
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', (d: Buffer) => log.push(d.toString()));
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`sevd exited with ${code}: ${log.join('\n')}`));
    });
    const timer = setTimeout(() => reject(new Error('sevd did not become ready: ' + log.join('\n'))), 15000);
  });
  proc.removeAllListeners('exit');
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  return {
    proc, dir, runDir, stateDir,
    controlPath: join(runDir, 'sevd.qmp'),
    guestQmp: (n) => join(runDir, 'guests', `${n}.qmp`),
    guestQga: (n) => join(runDir, 'guests', `${n}.qga`),
    wsPort, log,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (proc.exitCode === null) proc.kill(signal);
      const code = await exited;
      rmSync(dir, { recursive: true, force: true });
      return code;
    },
  };
}
