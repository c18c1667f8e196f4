/**
 * Hole 3 (issue 21), the privilege drop followed links: started as root with `user`, sevd
 * chowned every entry of its state directory with a link-following call, so a symlink
 * `state/x -> /etc/shadow` planted by the service user was handed to it at the next root
 * start. Replayed with a root-owned file standing in for /etc/shadow: a root start refuses
 * every planted link (symbolic or hard) in its own directories, naming it, and the target
 * stays root's; links among the clients' files in dumps/ are left alone, not followed.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { chmodSync, linkSync, lchownSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MAIN, NOBODY, nobodyCanRead, startSevd } from '../helpers/sevd-process.js';

const SKIP = process.getuid!() !== 0 ? 'needs root: the hole is in what a root start does' : !nobodyCanRead() ? 'nobody cannot read this checkout' : false;

t.test('a root start never hands a planted link to the service user', { skip: SKIP }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sevd-adv03-'));
  chmodSync(dir, 0o755); // nobody must reach its directories below
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const runDir = join(dir, 'run');
  const stateDir = join(dir, 'state');
  // Stand-ins for /etc/shadow and for a root directory such as /etc.
  const shadow = join(dir, 'shadow');
  writeFileSync(shadow, 'root:secret\n', { mode: 0o600 });
  const rootDir = join(dir, 'etc');
  mkdirSync(rootDir, { mode: 0o755 });
  const config = { runDir, stateDir, user: 'nobody', group: NOBODY.gid, websocket: false, guests: [] };
  const cfgPath = join(dir, 'c.json');
  writeFileSync(cfgPath, JSON.stringify(config));

  const first = await startSevd(config);
  await first.stop();
  t.equal(statSync(join(stateDir, 'platform.json')).uid, NOBODY.uid, 'a first root start hands the state to nobody');

  const untouched = (what: string) => {
    const s = statSync(shadow);
    t.same([s.uid, s.gid, s.mode & 0o777], [0, 0, 0o600], `${what}: the target is still root's, 0600`);
    t.equal(readFileSync(shadow, 'utf8'), 'root:secret\n');
    t.same([statSync(rootDir).uid, statSync(rootDir).gid], [0, 0], `${what}: the root directory too`);
  };
  /** A root start with `entry` planted: refused with one line naming it, nothing handed over. */
  const refused = (what: string, entry: string, kind: string) => {
    const r = spawnSync(process.execPath, [MAIN, '--config', cfgPath], { encoding: 'utf8', timeout: 5000 });
    t.equal(r.status, 2, `${what}: exit code 2`);
    t.ok(r.stderr.startsWith('sevd: ') && r.stderr.endsWith('\n') && r.stderr.split('\n').length === 2, `${what}: one line (${r.stderr.trim()})`);
    t.ok(r.stderr.includes(`${kind} '${entry}'`), `${what}: it names the ${kind}`);
    untouched(what);
  };
  /** A symlink as the service user would leave it (the link itself is its own). */
  const plantLink = (target: string, at: string) => {
    symlinkSync(target, at);
    lchownSync(at, NOBODY.uid, NOBODY.gid);
  };
  const platform = join(stateDir, 'platform.json');
  const saved = join(dir, 'platform.json.saved');

  plantLink(shadow, join(stateDir, 'x'));
  refused('state/x -> shadow', join(stateDir, 'x'), 'symbolic link');
  unlinkSync(join(stateDir, 'x'));

  renameSync(platform, saved);
  linkSync(shadow, platform);
  refused('state/platform.json a hard link to shadow', platform, 'file with 2 hard links');
  unlinkSync(platform);
  renameSync(saved, platform);

  const dumps = join(stateDir, 'dumps');
  renameSync(dumps, `${dumps}.saved`);
  plantLink(rootDir, dumps);
  refused('state/dumps -> a root directory', dumps, 'symbolic link');
  unlinkSync(dumps);
  renameSync(`${dumps}.saved`, dumps);

  const guests = join(runDir, 'guests');
  plantLink(shadow, join(guests, 'g.qmp'));
  refused('run/guests/g.qmp -> shadow', join(guests, 'g.qmp'), 'symbolic link');
  unlinkSync(join(guests, 'g.qmp'));
  rmSync(guests, { recursive: true });
  plantLink(rootDir, guests);
  refused('run/guests -> a root directory', guests, 'symbolic link');
  unlinkSync(guests);

  // The clients' files: left where they are, never followed.
  plantLink(shadow, join(dumps, 'x'));
  linkSync(shadow, join(dumps, 'h'));
  const next = await startSevd(config);
  untouched('links in dumps/');
  t.same([statSync(guests).uid, statSync(dumps).uid], [NOBODY.uid, NOBODY.uid], 'the directories are still handed over');
  t.equal(statSync(`/proc/${next.proc.pid}`).uid, NOBODY.uid, 'and the daemon runs as nobody');
  await next.stop();
});
