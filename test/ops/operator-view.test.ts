/**
 * The operator view in a real headless Chromium (Debian's package) against a real daemon,
 * driven as an operator would: guests with their live states, a stop clicked in the page
 * seen by a separate QMP client, a guest added over QMP appearing without a reload, the
 * memory picture with private and shared pages in the right places, the host's ciphertext
 * beside the guest's plaintext, and a migration's progress bar reaching completion.
 * Screenshots of the main states go to test/output/operator-view/ for a person to look at.
 */
import t from 'tap';
import { existsSync, mkdirSync } from 'node:fs';
import { chromium, type Page } from 'playwright-core';
import { RawClient } from '../helpers/raw-client.js';
import { startSevd } from '../helpers/sevd-process.js';
import { freePort } from '../helpers/free-port.js';
import { control, monitor, targetParams, waitStatus } from '../helpers/migration.js';

// Code run in the page by page.evaluate (the suite's TypeScript has no DOM library).
declare const window: any;
declare const document: any;
type HTMLCanvasElement = any;

const CHROMIUM = '/usr/bin/chromium';
const TOKEN = 'operator-view-token-0123456789';
const SHOTS = 'test/output/operator-view';
const COLOURS: Record<string, [number, number, number]> = { private: [0x7b, 0x2c, 0xbf], shared: [0x2a, 0x9d, 0x8f], vmsa: [0xe7, 0x6f, 0x51], untouched: [0xe5, 0xe5, 0xe5] };

async function cellText(page: Page, guest: string, cls: string): Promise<string | null> {
  return page.locator(`#guests tr[data-guest="${guest}"] td.${cls}`).textContent({ timeout: 10000 });
}

async function waitFor(fn: () => Promise<boolean>, what: string, ms = 10000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

t.test('operator view in headless Chromium', async (t) => {
  if (!existsSync(CHROMIUM)) return t.fail(`${CHROMIUM} is missing: install Debian's chromium package (.ci/run does)`);
  mkdirSync(SHOTS, { recursive: true });
  const sevd = await startSevd({
    websocket: { port: 0, token: TOKEN },
    guests: [{ name: 'plain', memory: '64M' }, { name: 'vm', memory: '64M', 'sev-guest': { policy: 1 } }],
  });
  const B = await startSevd({ guests: [] });
  t.teardown(async () => {
    await sevd.stop();
    await B.stop();
  });
  const base = `http://127.0.0.1:${sevd.wsPort}`;
  t.equal((await fetch(`${base}/`)).status, 401, 'with a token configured, / without it is refused');
  t.equal((await fetch(`${base}/?token=wrong`)).status, 401, 'and with a wrong one');
  const ok = await fetch(`${base}/?token=${TOKEN}`);
  t.equal(ok.status, 200, 'with the token: the page');
  t.equal(ok.headers.get('referrer-policy'), 'no-referrer', 'the token in the URL is never passed on');

  // The guest writes private and shared pages (through its agent: what software inside it does).
  const agent = await RawClient.connect(sevd.guestQga('vm'));
  const secret = Buffer.from('plaintext only the guest can see!'.padEnd(64, '.'));
  await agent.execute('guest-memory-write', { gpa: 0x100000, data: secret.toString('base64') });
  await agent.execute('guest-set-memory-attributes', { gpa: 0x200000, size: 0x10000, private: false });
  await agent.execute('guest-memory-write', { gpa: 0x200000, data: Buffer.alloc(0x10000, 0x33).toString('base64') });

  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  t.teardown(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${base}/?token=${TOKEN}`);
  await page.locator('#conn.ok').waitFor({ timeout: 10000 });
  t.equal(await cellText(page, 'vm', 'run-state'), 'running', 'the SEV guest appears, running');
  t.equal(await cellText(page, 'vm', 'sev-kind'), 'SEV');
  t.equal(await cellText(page, 'vm', 'sev-state'), 'running');
  t.equal(await cellText(page, 'plain', 'sev-kind'), 'none');
  t.match(await page.locator('#host-facts dd[data-fact="ASIDs"]').textContent(), /1 in use/, 'the host card counts ASIDs');
  await page.screenshot({ path: `${SHOTS}/1-host-and-guests.png`, fullPage: true });

  // A stop clicked in the page, seen by a separate QMP client.
  await page.locator('#guests tr[data-guest="plain"] button[data-action="stop"]').click();
  const other = await RawClient.connect(sevd.guestQmp('plain'));
  await other.negotiate();
  await waitFor(async () => (await other.execute('query-status')).return.status === 'paused', 'plain to stop');
  t.pass('a stop clicked in the page pauses the guest for every client');
  await waitFor(async () => (await cellText(page, 'plain', 'run-state')) === 'paused', 'the page to show paused');
  await other.close();

  // A guest added over QMP appears without a reload.
  const ctl = await control(sevd);
  await ctl.execute('guest-add', { name: 'late', memory: '64M', paused: true, 'sev-guest': { policy: 5, }, smp: 2, firmware: '/usr/share/OVMF/OVMF_CODE.fd' });
  await waitFor(async () => (await page.locator('#guests tr[data-guest="late"]').count()) === 1, 'the new guest row');
  t.equal(await cellText(page, 'late', 'sev-kind'), 'SEV-ES', 'a guest added over QMP appears, with its SEV kind');
  t.equal(await cellText(page, 'late', 'run-state'), 'prelaunch');

  // The memory picture of vm: private and shared pages in the right places.
  await page.locator('#guests tr[data-guest="vm"] td.run-state').click();
  await waitFor(async () => (await page.evaluate(() => (window as any).sevdView.layoutGuest)) === 'vm', "vm's memory picture");
  const check = async (gpa: number, kind: string) => {
    const px = await page.evaluate(({ gpa }) => {
      const run = (window as any).sevdView.layout.find((r: any) => gpa >= r.gpa && gpa < r.gpa + r.pages * 4096);
      const x = Math.floor(run.x0 + ((gpa - run.gpa) / (run.pages * 4096)) * (run.x1 - run.x0));
      const c = document.querySelector('#memory') as HTMLCanvasElement;
      return { kind: run.kind, rgb: [...c.getContext('2d')!.getImageData(Math.min(x, c.width - 1), 30, 1, 1).data.slice(0, 3)] };
    }, { gpa });
    t.equal(px.kind, kind, `0x${gpa.toString(16)} is ${kind} in the picture's data`);
    t.same(px.rgb, COLOURS[kind], `0x${gpa.toString(16)} is drawn in ${kind}'s colour`);
  };
  await check(0x100000, 'private');
  await check(0x200000, 'shared');
  await check(0x3000000, 'untouched');
  await page.screenshot({ path: `${SHOTS}/2-memory-picture.png`, fullPage: true });

  // The host's view beside the guest's view of a private page.
  await page.fill('#page-form input[name="gpa"]', '0x100000');
  await page.click('#page-form button');
  await waitFor(async () => ((await page.textContent('#guest-view')) ?? '').length > 0 && ((await page.textContent('#host-view')) ?? '').length > 0, 'both page views');
  const plainHex = secret.subarray(0, 16).toString('hex').match(/../g)!.join(' ');
  const guestView = (await page.textContent('#guest-view'))!;
  const hostView = (await page.textContent('#host-view'))!.replace(/\s+/g, ' ');
  t.ok(guestView.includes(plainHex), "the guest's view shows the plaintext");
  t.notOk(hostView.includes(plainHex), "the host's view does not: ciphertext");
  await page.screenshot({ path: `${SHOTS}/3-page-views.png`, fullPage: true });

  // A migration: its progress bar reaches completion.
  const port = await freePort();
  const cb = await control(B);
  await cb.execute('guest-add', { name: 'vm', memory: '64M', incoming: `tcp:127.0.0.1:${port}`, 'sev-guest': { policy: 1 } });
  const ga = await monitor(sevd, 'vm');
  for (const [k, v] of Object.entries(await targetParams(cb))) await ga.execute('migrate-set-parameters', { [k]: v });
  await ga.execute('migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true }] });
  await ga.execute('migrate', { uri: `tcp:127.0.0.1:${port}` });
  await waitStatus(ga, ['completed']);
  await waitFor(async () => (await page.locator('#guests tr[data-guest="vm"] td.migration progress').getAttribute('data-status')) === 'completed', 'the progress bar');
  t.equal(await page.locator('#guests tr[data-guest="vm"] td.migration progress').getAttribute('value'), '100', 'the migration progress bar reaches 100 %');
  t.equal(await cellText(page, 'vm', 'run-state'), 'postmigrate');
  await page.screenshot({ path: `${SHOTS}/4-migrated.png`, fullPage: true });
  t.ok((await page.locator('#events li[data-event="MIGRATION"]').count()) > 0, 'the event log shows MIGRATION events');
  t.same(errors, [], 'no script errors in the page');
  await Promise.all([agent.close(), ctl.close(), cb.close(), ga.close()]);
});
