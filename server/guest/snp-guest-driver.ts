/**
 * What the guest's sev-guest driver does (linux drivers/virt/coco/sev-guest): it reads its
 * VMPCK from the secrets page, seals each request under it with the next sequence number,
 * hands the message to the hypervisor (SNP_GUEST_REQUEST) and opens the answer. The guest
 * agent's SNP commands go through here, never around the message path.
 */
import { QmpError } from '../errors/qmp-error.js';
import { decodeSecretsPage } from '../../abi/snp/secrets.js';
import {
  decodeKeyResponse, decodeReportResponse, encodeKeyRequest, encodeReportRequest, MsgType, openGuestMessage, sealGuestMessage, type KeyRequest,
} from '../../abi/snp/guest-msg.js';

export interface SnpGuestChannel {
  /** The guest's view of its secrets page. */
  secretsPage(): Buffer;
  /** The hypervisor passes the message to the firmware; throws on a firmware refusal. */
  exchange(request: Buffer): Buffer;
}

export class SnpGuestDriver {
  /** The last sequence number used with VMPCK0 (requests take odd numbers, responses the next). */
  private seqno = 0n;

  constructor(private readonly channel: SnpGuestChannel, private readonly vmpck = 0) {}

  private request(type: number, payload: Buffer, answer: number): Buffer {
    const key = decodeSecretsPage(this.channel.secretsPage()).vmpcks[this.vmpck]!;
    const seqno = this.seqno + 1n;
    const response = this.channel.exchange(sealGuestMessage(key, { seqno, type, version: 1, vmpck: this.vmpck, payload }));
    this.seqno = seqno + 1n;
    const msg = openGuestMessage(key, response);
    if (msg.type !== answer || msg.seqno !== seqno + 1n) throw QmpError.generic('SEV-SNP: unexpected guest message response');
    return msg.payload;
  }

  /**
   * A message the guest sealed itself, with its own sequence number (guest code that
   * bypasses the driver); the answer comes back sealed. The driver's own count then no
   * longer matches the firmware's, as it would not in a real guest either.
   */
  passThrough(message: Buffer): Buffer {
    return this.channel.exchange(message);
  }

  report(reportData: Buffer, vmpl: number): Buffer {
    const r = decodeReportResponse(this.request(MsgType.REPORT_REQ, encodeReportRequest({ reportData, vmpl, keySelect: 0 }), MsgType.REPORT_RSP));
    if (r.status !== 0) throw QmpError.generic(`SEV-SNP: MSG_REPORT_REQ failed: status=0x${r.status.toString(16)}`);
    return r.report;
  }

  deriveKey(k: KeyRequest): Buffer {
    const r = decodeKeyResponse(this.request(MsgType.KEY_REQ, encodeKeyRequest(k), MsgType.KEY_RSP));
    if (r.status !== 0) throw QmpError.generic(`SEV-SNP: MSG_KEY_REQ failed: status=0x${r.status.toString(16)}`);
    return Buffer.from(r.key);
  }
}
