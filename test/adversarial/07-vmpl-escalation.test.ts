/**
 * Hole 7, VMPL escalation in SNP reports. The attack: guest code holding only VMPCK3 seals a
 * MSG_REPORT_REQ asking for `vmpl: 0` and gets a VCEK-signed report claiming VMPL 0, which a
 * verifier trusts as coming from the most privileged level. The SNP ABI (AMD 56860,
 * MSG_REPORT_REQ) requires VMPL >= the VMPL of the VMPCK the request is sealed with.
 */
import t from 'tap';
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { startSevd } from '../helpers/sevd-process.js';
import { control } from '../helpers/migration.js';
import { RawClient } from '../helpers/raw-client.js';
import { MSG, openSnpMessage, readVmpcks, reportRequest, reportResponse, sealSnpMessage } from '../helpers/snp-message.js';
import { decodeSnpReport } from '../../abi/snp/report.js';

const OVMF = '/usr/share/OVMF/OVMF_CODE.fd';
const INVALID_PARAM = 0x16;

t.test('a report request sealed with VMPCK3 cannot claim VMPL 0', { skip: !existsSync(OVMF) && 'Debian ovmf missing' }, async (t) => {
  const sevd = await startSevd({ guests: [], platform: { generation: 'milan' } });
  t.teardown(() => sevd.stop());
  const ctl = await control(sevd);
  t.same((await ctl.execute('guest-add', { name: 'snp', memory: '128M', firmware: OVMF, 'sev-snp-guest': {} })).return, {}, 'an SNP guest');
  const agent = await RawClient.connect(sevd.guestQga('snp'));
  const vmpcks = await readVmpcks(agent, OVMF);
  // The guest agent's own report path (the driver, VMPCK0, sequence numbers 1 and 2) is unaffected.
  const viaDriver = (await agent.execute('guest-snp-report', { vmpl: 1 })).return;
  t.equal(decodeSnpReport(Buffer.from(viaDriver.report, 'base64')).vmpl, 1, 'guest-snp-report vmpl 1');
  const seq = [2n, 0n, 0n, 0n];
  /** Guest code at the VMPL of VMPCK `id` asks for a report at `vmpl`: the opened response. */
  const ask = async (id: number, vmpl: number) => {
    const seqno = seq[id]! + 1n;
    const reportData = randomBytes(64);
    const request = sealSnpMessage(vmpcks[id]!, { seqno, type: MSG.REPORT_REQ, vmpck: id, payload: reportRequest(reportData, vmpl) });
    const r = await agent.execute('guest-snp-message', { request });
    t.notOk(r.error, `VMPCK${id} vmpl ${vmpl}: the message is answered`);
    seq[id] = seqno + 1n;
    const m = openSnpMessage(vmpcks[id]!, r.return.response);
    t.equal(m.seqno, seqno + 1n);
    t.equal(m.type, MSG.REPORT_RSP);
    return { ...reportResponse(m.payload), reportData };
  };

  const escalated = await ask(3, 0);
  t.equal(escalated.status, INVALID_PARAM, 'VMPCK3 asking VMPL 0: INVALID_PARAM in the response');
  t.equal(escalated.report.length, 0, 'and no report');
  for (const vmpl of [1, 2]) t.equal((await ask(3, vmpl)).status, INVALID_PARAM, `VMPCK3 asking VMPL ${vmpl}: refused too`);
  t.equal((await ask(2, 1)).status, INVALID_PARAM, 'VMPCK2 asking VMPL 1: refused');

  const own = await ask(3, 3);
  t.equal(own.status, 0, 'VMPCK3 asking VMPL 3: a report');
  t.equal(decodeSnpReport(own.report).vmpl, 3, 'which says VMPL 3');
  t.ok(decodeSnpReport(own.report).reportData.equals(own.reportData));

  const vmpl0 = await ask(0, 0);
  t.equal(vmpl0.status, 0, 'VMPCK0 asking VMPL 0 still works');
  t.equal(decodeSnpReport(vmpl0.report).vmpl, 0);
  const lower = await ask(0, 2);
  t.equal(decodeSnpReport(lower.report).vmpl, 2, 'VMPCK0 may ask for a less privileged VMPL');

  await agent.close();
  await ctl.close();
});
