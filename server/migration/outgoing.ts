/**
 * The source side of a (live, pre-copy) migration: SEND_START for the target's PDH and
 * chain, a first pass over every stored page, further passes over the pages the guest
 * dirtied meanwhile until the rest fits the downtime limit, then the final pass with the
 * guest stopped. Private pages travel only as SEND_UPDATE_DATA packets, shared pages in
 * plaintext. Success: SEND_FINISH (the guest can never run here again); failure or
 * cancel: SEND_CANCEL and the guest carries on.
 */
import { setImmediate as tick } from 'node:timers/promises';
import { glibBase64Decode } from '../util/base64.js';
import type { Guest, RunState } from '../guest/guest.js';
import type { SevGuest } from '../sev/sev-guest.js';
import type { MigrationState } from './migration-state.js';
import { encodeHeader, encodeRecord, encryptedRecordSize, writeEncryptedRecord, type SendStartBlob, type StreamRecord } from './stream.js';
import type { OutgoingPacket } from '../firmware/send-receive.js';
import { PACKET_HEADER_SIZE } from '../../abi/launch-crypto.js';
import { openSink, type FileOpener, type StreamSink } from './sink.js';
import type { MigrationFaultPlan } from '../faults/fault-registry.js';
import type { MigrationUri } from './uri.js';
import type { Metrics } from '../observability/metrics.js';

const PAGE = 4096;
/** Private pages per SEND_UPDATE_DATA batch (and per write to the stream). */
const BATCH_PAGES = 16;
const MAX_PASSES = 30;
const ACK_TIMEOUT_MS = 30000;

export class MigrationAborted extends Error {}

export interface OwnCerts {
  pdh: Buffer;
  platCerts: Buffer;
  amdCerts: Buffer;
}

export class OutgoingMigration {
  private cancelled = false;
  private sink: StreamSink | null = null;
  private sentStart = false;
  private sevStarted = false;

  constructor(
    private readonly guest: Guest,
    private readonly sev: SevGuest | null,
    private readonly state: MigrationState,
    private readonly uri: MigrationUri,
    private readonly own: () => OwnCerts,
    private readonly openFile: FileOpener,
    /** An injected migration fault (docs/interface.md §13) armed for this run. */
    private faultPlan?: MigrationFaultPlan,
    /** The daemon's metrics (stream bytes out). */
    private readonly metrics?: Metrics,
  ) {}

  /** Releases a stalled stream (cancel). */
  private unstall: (() => void) | null = null;

  cancel(): void {
    if (!this.state.active) return;
    this.cancelled = true;
    this.state.setStatus('cancelling');
    this.sink?.abort();
    this.unstall?.();
  }

  private check(): void {
    if (this.cancelled) throw new MigrationAborted('cancelled');
  }

  /** Runs to completion; never throws (the outcome is in the migration state). */
  async run(): Promise<void> {
    const st = this.state;
    st.reset();
    st.setStatus('setup');
    let before: RunState | null = null;
    try {
      const start = this.sev ? this.sendStart() : undefined;
      this.sink = await openSink(this.uri, this.openFile);
      this.check();
      st.setupTime = Date.now() - st.startedAt;
      st.setStatus('active');
      const mem = this.guest.memory;
      mem.dirty = new Set();
      await this.sink.write(encodeHeader());
      await this.write({ kind: 'config', ramBytes: this.ramBytes(), config: { name: this.guest.name, sev: this.sev !== null } });
      const stored = mem.storedPfns();
      st.ram.total = this.ramBytes();
      const t0 = Date.now();
      let pass = 1;
      let sent = await this.sendPages(stored, start);
      st.pass(pass);
      // The series raises the limit to 1 s for SEV because real hardware sends ~400 pages/s;
      // sevd's firmware is fast, so the configured downtime-limit applies as it is.
      const limit = Number(st.parameters['downtime-limit']);
      for (;;) {
        this.check();
        await this.write({ kind: 'eos' });
        const rate = (sent * PAGE) / Math.max(1, Date.now() - t0); // bytes per ms so far
        const dirty = mem.dirty.size;
        st.ram.remaining = dirty * PAGE;
        st.expectedDowntime = Math.round((dirty * PAGE) / Math.max(rate, 1));
        if (st.expectedDowntime <= limit || pass >= MAX_PASSES) break;
        const pages = [...mem.dirty].sort((a, b) => a - b);
        mem.dirty = new Set();
        sent += await this.sendPages(pages, undefined);
        st.pass(++pass);
      }
      // Final pass with the guest stopped.
      before = this.guest.enterFinishMigrate();
      const stoppedAt = Date.now();
      const last = [...mem.dirty].sort((a, b) => a - b);
      mem.dirty = null;
      await this.sendPages(last, undefined);
      st.pass(++pass);
      if (this.sev) await this.write({ kind: 'shared', ranges: mem.sharedRanges() });
      await this.write({ kind: 'device', state: { running: before === 'running' } });
      await this.sink.finish(ACK_TIMEOUT_MS);
      this.check();
      if (this.sev) {
        this.sev.sendFinish(); // QEMU shows running again; the firmware context is SENT
      }
      st.downtime = Date.now() - stoppedAt;
      st.endedAt = Date.now();
      st.ram.remaining = 0;
      st.ram.mbps = ((st.ram.transferred * 8) / 1e6) / Math.max(0.001, (st.endedAt - st.startedAt) / 1000);
      this.guest.enterPostmigrate();
      st.setStatus('completed');
    } catch (e) {
      this.guest.memory.dirty = null;
      this.sink?.abort();
      if (this.sevStarted && this.sev) {
        this.sev.sendCancel();
      }
      if (before !== null) this.guest.leaveMigration(before);
      st.endedAt = Date.now();
      if (this.cancelled) st.setStatus('cancelled');
      else {
        st.errorDesc = e instanceof Error ? e.message : String(e);
        st.setStatus('failed');
      }
    }
  }

  private ramBytes(): number {
    return this.guest.memory.regions.filter((r) => r.name.startsWith('pc.ram')).reduce((a, r) => a + r.size, 0);
  }

  /** SEND_START before any byte leaves (NOSEND fails here), with the length query first. */
  private sendStart(): SendStartBlob {
    const sev = this.sev!;
    const p = this.state.parameters;
    let target: OwnCerts;
    if (this.uri.kind === 'file' && !p['sev-pdh']) target = this.own();
    else {
      const pdh = glibBase64Decode(String(p['sev-pdh']));
      const platCerts = glibBase64Decode(String(p['sev-plat-cert']));
      const amdCerts = glibBase64Decode(String(p['sev-amd-cert']));
      for (const b of [pdh, platCerts, amdCerts]) if (b.length > 16384) throw new Error(`invalid length max=16384 got=${b.length}`);
      if (!pdh.length || !platCerts.length) throw new Error('SEV: missing remote PDH or PLAT_CERT');
      target = { pdh, platCerts, amdCerts };
    }
    const { session, policy } = sev.sendStart(target);
    this.sevStarted = true;
    return { policy, pdh: this.own().pdh, session };
  }

  private async write(r: StreamRecord): Promise<void> {
    await this.writeBytes(encodeRecord(r));
  }

  /**
   * An armed migration fault, once `after-pages` pages went out: the connection is cut, one
   * byte of an SEV packet flips (the target's MAC check catches it), or sending stops until
   * migrate_cancel.
   */
  private async injectFault(b: Buffer, packets: boolean): Promise<void> {
    const plan = this.faultPlan;
    if (!plan || this.state.ram.normal < plan.afterPages || (plan.action === 'corrupt' && !packets)) return;
    this.faultPlan = undefined;
    const at = `after ${this.state.ram.normal} pages of ${this.guest.name}`;
    plan.fire(`migration ${plan.action} ${at}`);
    if (plan.action === 'corrupt') {
      b[b.length - 1]! ^= 0x01; // the last packet's ciphertext
    } else if (plan.action === 'cut') {
      this.sink?.abort();
      throw new Error('Unable to write to socket: Connection reset by peer');
    } else {
      await new Promise<void>((r) => (this.unstall = r));
      this.check();
    }
  }

  private async writeBytes(b: Buffer, packets = false): Promise<void> {
    await this.injectFault(b, packets);
    this.state.ram.transferred += b.length;
    this.metrics?.migrationBytes.incKey('out', { direction: 'out' }, b.length);
    await this.sink!.write(b);
  }

  /** One pass over `pfns`; returns the number of pages sent. */
  private async sendPages(pfns: number[], start: SendStartBlob | undefined): Promise<number> {
    const mem = this.guest.memory;
    const bw = Number(this.state.parameters['max-bandwidth']);
    const t0 = Date.now();
    let bytes = 0;
    let n = 0;
    let batch: number[] = [];
    const flush = async () => {
      if (!batch.length) return;
      const gpas = batch;
      batch = [];
      const first = this.sentStart ? undefined : start;
      this.sentStart = true;
      await this.writeBytes(this.encryptedRecords(gpas, first), true);
    };
    for (const pfn of pfns) {
      this.check();
      const gpa = pfn * PAGE;
      if (!mem.isMapped(gpa)) continue;
      if (this.sev && mem.isPrivate(pfn)) {
        batch.push(gpa);
        if (batch.length === BATCH_PAGES) await flush();
      } else {
        await flush();
        const data = mem.read(gpa, PAGE);
        if (data.every((x) => x === 0)) {
          this.state.ram.duplicate++;
          await this.write({ kind: 'zero', gpa });
        } else await this.write({ kind: 'page', gpa, data });
      }
      this.state.ram.normal++;
      n++;
      bytes += PAGE;
      // Let the guest (agent) run between batches, and keep to max-bandwidth.
      if ((n & 63) === 0) {
        await tick();
        const ahead = bw > 0 ? (bytes / bw) * 1000 - (Date.now() - t0) : 0;
        if (ahead > 5) await new Promise((r) => setTimeout(r, ahead));
      }
    }
    await flush();
    return n;
  }

  /** SEND_UPDATE_DATA for whole private pages, the packets written straight into their stream records. */
  private encryptedRecords(gpas: number[], start: SendStartBlob | undefined): Buffer {
    const sev = this.sev!;
    const out = Buffer.allocUnsafe(encryptedRecordSize(PACKET_HEADER_SIZE, PAGE, start) + (gpas.length - 1) * encryptedRecordSize(PACKET_HEADER_SIZE, PAGE));
    let at = 0;
    const packets: OutgoingPacket[] = gpas.map((gpa, i) => {
      const r = writeEncryptedRecord(out, at, gpa, PACKET_HEADER_SIZE, PAGE, i === 0 ? start : undefined);
      at = r.end;
      return { gpa, len: PAGE, header: r.header, trans: r.trans };
    });
    sev.sendUpdateData(packets);
    return out;
  }
}
