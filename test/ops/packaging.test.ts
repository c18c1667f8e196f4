/**
 * The production tree, built the way the Dockerfile builds it (the same commands, into a
 * temporary directory; no Docker engine here), starts and answers QMP. The test checks that
 * the Dockerfile still contains every command it mirrors, so the two cannot drift apart.
 */
import t from 'tap';
import { execSync, spawn } from 'node:child_process';
import { chmodSync, chownSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { RawClient } from '../helpers/raw-client.js';

const ROOT = resolve('.');
const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');

t.test('Dockerfile: build stage and run stage, mirrored', async (t) => {
  const mirrored = [
    'COPY package.json package-lock.json tsconfig.json ./',
    'RUN npm ci --no-audit --no-fund',
    'COPY abi ./abi',
    'COPY cli ./cli',
    'COPY schema ./schema',
    'COPY server ./server',
    'COPY clients ./clients',
    'COPY test ./test',
    'RUN npx tsc -p tsconfig.json',
    'RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force',
    'COPY --from=build /src/dist/abi ./dist/abi',
    'COPY --from=build /src/dist/cli ./dist/cli',
    'COPY --from=build /src/dist/server ./dist/server',
    'COPY --from=build /src/dist/schema ./dist/schema',
    'COPY config ./config',
    'COPY web ./web',
    'USER node',
    '--read-only',
    'HEALTHCHECK',
    'ENTRYPOINT ["node", "dist/server/main.js"]',
  ];
  for (const line of mirrored) t.ok(dockerfile.includes(line), `Dockerfile has: ${line}`);

  const tmp = mkdtempSync(join(tmpdir(), 'sevd-image-'));
  const build = join(tmp, 'src');
  const run = join(tmp, 'opt-sevd');
  // Build stage. `npm ci` is replaced by the already installed dependencies (same lock file).
  for (const f of ['package.json', 'package-lock.json', 'tsconfig.json']) cpSync(join(ROOT, f), join(build, f));
  symlinkSync(join(ROOT, 'node_modules'), join(build, 'node_modules'));
  for (const d of ['abi', 'cli', 'schema', 'server', 'clients', 'test']) cpSync(join(ROOT, d), join(build, d), { recursive: true });
  execSync(`${process.execPath} ${join(ROOT, 'node_modules/typescript/bin/tsc')} -p tsconfig.json`, { cwd: build, stdio: 'pipe' });
  // Run stage: production dependencies only.
  for (const f of ['package.json', 'package-lock.json']) cpSync(join(ROOT, f), join(run, f));
  execSync('npm ci --omit=dev --no-audit --no-fund --prefer-offline', { cwd: run, stdio: 'pipe' });
  cpSync(join(build, 'dist/abi'), join(run, 'dist/abi'), { recursive: true });
  cpSync(join(build, 'dist/cli'), join(run, 'dist/cli'), { recursive: true });
  cpSync(join(build, 'dist/server'), join(run, 'dist/server'), { recursive: true });
  cpSync(join(build, 'dist/schema'), join(run, 'dist/schema'), { recursive: true });
  cpSync(join(ROOT, 'config'), join(run, 'config'), { recursive: true });
  cpSync(join(ROOT, 'web'), join(run, 'web'), { recursive: true });
  t.notOk(existsSync(join(run, 'node_modules/typescript')), 'no dev dependencies (typescript)');
  t.notOk(existsSync(join(run, 'node_modules/tap')), 'no dev dependencies (tap)');
  t.ok(existsSync(join(run, 'node_modules/fastify')), 'production dependencies present');

  // Start it as the image's ENTRYPOINT would under `docker run --read-only`: the tree is
  // read-only, only the run and state volumes are writable, and (where the test is root)
  // the process is an unprivileged user, as USER node makes it.
  for (const f of readdirSync(run, { recursive: true }).map((p) => join(run, String(p)))) chmodSync(f, statSync(f).mode & ~0o222);
  chmodSync(run, 0o555);
  chmodSync(tmp, 0o755);
  const volumes = [join(tmp, 'run'), join(tmp, 'state')];
  const asUser = process.getuid!() === 0 ? { uid: 65534, gid: 65534 } : {};
  for (const v of volumes) {
    mkdirSync(v, { mode: 0o700 });
    if (asUser.uid !== undefined) chownSync(v, asUser.uid, asUser.gid!);
  }
  t.teardown(() => chmodSync(run, 0o755));
  const proc = spawn(process.execPath, ['dist/server/main.js', '--config', 'config/container.json', '--run-dir', volumes[0]!, '--state-dir', volumes[1]!, '--ws-host', '127.0.0.1', '--ws-port', '0'], { cwd: run, stdio: ['ignore', 'pipe', 'pipe'], ...asUser });
  t.teardown(() => proc.kill('SIGTERM'));
  let out = '';
  await new Promise<void>((r, j) => {
    proc.stdout.on('data', (d) => (out += d) && out.includes('sevd ready') && r());
    proc.stderr.on('data', (d) => (out += d));
    proc.once('exit', (c) => j(new Error(`exited ${c}: ${out}`)));
  });
  const port = Number(/"websocket":"ws:\/\/127\.0\.0\.1:(\d+)"/.exec(out)![1]);
  t.same(await (await fetch(`http://127.0.0.1:${port}/healthz`)).json(), { status: 'ok' }, 'HEALTHCHECK endpoint');
  t.match(await (await fetch(`http://127.0.0.1:${port}/`)).text(), /<title>sevd — operator view<\/title>/, 'the operator view is served from the image');
  const c = await RawClient.connect(join(tmp, 'run', 'sevd.qmp'));
  await c.negotiate();
  t.same((await c.execute('guest-add', { name: 'vm', paused: true, 'sev-guest': { policy: 1 } })).return, {}, 'SEV guests work from the production tree');
  t.equal((await c.execute('query-guests')).return[0]['sev-state'], 'launch-secret');
  await c.close();
});

t.test('systemd unit', async (t) => {
  const unit = readFileSync(join(ROOT, 'config/sevd.service'), 'utf8');
  t.match(unit, /ExecStart=\/usr\/bin\/node \/opt\/sevd\/dist\/server\/main\.js --config \/etc\/sevd\/config\.json/);
  t.match(unit, /RuntimeDirectory=sevd/);
  t.match(unit, /StateDirectory=sevd/);
  t.match(unit, /User=sevd/);
});
