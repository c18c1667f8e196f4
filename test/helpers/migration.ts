/** Two-host migration helpers: monitors, the target's parameters, waiting for a status. */
import { RawClient } from './raw-client.js';
import { startSevd, type SevdProcess } from './sevd-process.js';

export async function control(sevd: SevdProcess) {
  const c = await RawClient.connect(sevd.controlPath);
  await c.negotiate();
  return c;
}

export async function monitor(sevd: SevdProcess, name: string) {
  const g = await RawClient.connect(sevd.guestQmp(name));
  await g.negotiate();
  return g;
}

/** The target's PDH, chain and AMD chain as migrate-set-parameters takes them. */
export async function targetParams(ctl: RawClient) {
  const caps = (await ctl.execute('query-sev-capabilities')).return;
  const certs = (await ctl.execute('sev-export-certs')).return;
  return {
    'sev-pdh': caps.pdh,
    'sev-plat-cert': caps['cert-chain'],
    'sev-amd-cert': Buffer.concat([Buffer.from(certs.ask, 'base64'), Buffer.from(certs.ark, 'base64')]).toString('base64'),
  };
}

export async function waitStatus(g: RawClient, want: string[], ms = 20000): Promise<any> {
  const end = Date.now() + ms;
  for (;;) {
    const info = (await g.execute('query-migrate')).return;
    if (want.includes(info.status)) return info;
    if (Date.now() > end) throw new Error(`migration status ${JSON.stringify(info)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Two hosts (two chips), stopped when the test ends, with their control monitors. */
export async function twoHosts(t: { teardown(fn: () => Promise<void>): void }) {
  const A = await startSevd({ guests: [] });
  const B = await startSevd({ guests: [] });
  t.teardown(async () => {
    await A.stop();
    await B.stop();
  });
  return { A, B, ca: await control(A), cb: await control(B) };
}
