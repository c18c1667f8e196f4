/** SNP platform benchmarks: a VCEK for a new TCB over the KDS endpoint (derivation + issue), and report verification. */
import { existsSync, readFileSync } from 'node:fs';
import { RawClient } from '../helpers/raw-client.js';

const OVMF = '/usr/share/OVMF/OVMF_CODE.fd';
import { startSevd } from '../helpers/sevd-process.js';
import { control } from '../helpers/migration.js';
import { percentile } from './qmp-load.js';
import { verifySnpReport } from '../../clients/owner/snp-verify.js';

type Report = (name: string, value: unknown) => void;

export async function snpBench(report: Report): Promise<void> {
  // The KDS rate limit would answer most of 40 back-to-back new TCBs with 429: lift it here.
  const sevd = await startSevd({ guests: [], limits: { kdsNewVcekPerSecond: 1000, kdsNewVcekBurst: 1000 } });
  try {
    const ctl = await control(sevd);
    const chip = (await ctl.execute('sev-snp-platform-status')).return['chip-id'];
    await ctl.close();
    const base = `http://127.0.0.1:${sevd.wsPort}/vcek/v1/Milan/${chip}`;
    await fetch(`${base}?blSPL=0&teeSPL=0&snpSPL=0&ucodeSPL=0`); // the ARK/ASK are issued once
    const fresh: number[] = [];
    const cached: number[] = [];
    for (let i = 1; i <= 40; i++) {
      const url = `${base}?blSPL=${i}&teeSPL=0&snpSPL=8&ucodeSPL=115`;
      let t0 = performance.now();
      await (await fetch(url)).arrayBuffer();
      fresh.push(performance.now() - t0);
      t0 = performance.now();
      await (await fetch(url)).arrayBuffer();
      cached.push(performance.now() - t0);
    }
    fresh.sort((a, b) => a - b);
    cached.sort((a, b) => a - b);
    report('snp: VCEK for a new TCB over KDS (derive + issue) p50 ms', percentile(fresh, 50));
    report('snp: VCEK already issued, p50 ms (baseline: HTTP alone)', percentile(cached, 50));
    // Reports through the guest agent: each one a VMPCK-sealed message through KVM to the firmware, signed with the VCEK.
    const ctl2 = await control(sevd);
    if (existsSync(OVMF)) {
      await ctl2.execute('guest-add', { name: 'r', memory: '256M', firmware: OVMF, smp: 1, 'sev-snp-guest': { policy: 0x30000 } });
      const agent = await RawClient.connect(sevd.guestQga('r'));
      const t1 = performance.now();
      let reports = 0;
      while (performance.now() - t1 < 2000) {
        const r = await agent.execute('guest-snp-report', { 'report-data': 'AAAA' });
        if (!('return' in r)) throw new Error(JSON.stringify(r));
        reports++;
      }
      report('snp: reports per second through the guest agent (target ≥ 300)', (reports * 1000) / (performance.now() - t1));
      await agent.close();
    }
    await ctl2.close();
  } finally {
    await sevd.stop();
  }
  const rpt = readFileSync('test/fixtures/snp/milan-report.bin');
  const vcek = readFileSync('test/fixtures/snp/milan-vcek.der');
  const t0 = performance.now();
  let n = 0;
  while (performance.now() - t0 < 2000) {
    const r = await verifySnpReport(rpt, { product: 'Milan', vcek });
    if (!r.ok) throw new Error('the real report must verify');
    n++;
  }
  report('snp: full report verification (chain + signature + TCB + hwID) /s', (n * 1000) / (performance.now() - t0));
}
