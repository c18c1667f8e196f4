/**
 * Hole 11, short SNP messages. The attack: guest code seals a MSG_REPORT_REQ with an empty
 * payload, or a MSG_KEY_REQ of 4 bytes; sevd answered `sevd: internal error` and had already
 * used up the sequence number. A malformed request must be refused as the firmware refuses
 * one (INVALID_PARAM) and change nothing: the same sequence number then works.
 */
import t from 'tap';
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { startSevd } from '../helpers/sevd-process.js';
import { control } from '../helpers/migration.js';
import { RawClient } from '../helpers/raw-client.js';
import { MSG, openSnpMessage, readVmpcks, reportRequest, reportResponse, sealSnpMessage } from '../helpers/snp-message.js';

const OVMF = '/usr/share/OVMF/OVMF_CODE.fd';
const REFUSED = 'SEV: SNP_GUEST_REQUEST failed: fw_err=22 (Invalid parameter)';

t.test('short or unknown SNP guest messages are refused without using up the sequence number', { skip: !existsSync(OVMF) && 'Debian ovmf missing' }, async (t) => {
  const sevd = await startSevd({ guests: [], platform: { generation: 'milan' } });
  t.teardown(() => sevd.stop());
  const ctl = await control(sevd);
  t.same((await ctl.execute('guest-add', { name: 'snp', memory: '128M', firmware: OVMF, 'sev-snp-guest': {} })).return, {}, 'an SNP guest');
  const agent = await RawClient.connect(sevd.guestQga('snp'));
  const [vmpck0] = await readVmpcks(agent, OVMF);
  const send = (seqno: bigint, type: number, payload: Buffer) =>
    agent.execute('guest-snp-message', { request: sealSnpMessage(vmpck0!, { seqno, type, vmpck: 0, payload }) });

  let seqno = 1n;
  for (const [what, type, payload] of [
    ['REPORT_REQ, empty payload', MSG.REPORT_REQ, Buffer.alloc(0)],
    ['REPORT_REQ, 71 bytes (short of the key select)', MSG.REPORT_REQ, Buffer.alloc(71)],
    ['KEY_REQ, 4 bytes', MSG.KEY_REQ, Buffer.alloc(4)],
    ['KEY_REQ, 31 bytes', MSG.KEY_REQ, Buffer.alloc(31)],
    ['an unknown message type', 7, Buffer.alloc(96)],
  ] as const) {
    const r = await send(seqno, type, payload);
    t.same(r.error, { class: 'GenericError', desc: REFUSED }, `${what}: INVALID_PARAM`);
    // The same number again, well formed: answered (nothing was used up).
    const reportData = randomBytes(64);
    const ok = await send(seqno, MSG.REPORT_REQ, reportRequest(reportData, 0));
    t.notOk(ok.error, `${what}: sequence number ${seqno} still works`);
    const m = openSnpMessage(vmpck0!, ok.return.response);
    t.equal(m.seqno, seqno + 1n);
    t.equal(reportResponse(m.payload).status, 0);
    seqno += 2n;
  }
  const key = Buffer.alloc(32);
  key.writeUInt32LE(0, 16); // VMPL 0
  const k = await send(seqno, MSG.KEY_REQ, key);
  t.equal(openSnpMessage(vmpck0!, k.return.response).type, MSG.KEY_RSP, 'a full-size KEY_REQ is answered');
  t.equal(openSnpMessage(vmpck0!, k.return.response).payload.readUInt32LE(0), 0, 'status 0');

  t.same((await agent.execute('guest-ping')).return, {}, 'the agent is still answering');
  await agent.close();
  await ctl.close();
});
