/**
 * Loads one incoming stream into the destination guest: the RAM size first, plain pages as
 * they are, RECEIVE_START on the first encrypted record, RECEIVE_UPDATE_DATA for each packet
 * (consecutive pages as one batch), the shared-regions list, and at the device state that
 * ends the stream RECEIVE_FINISH, then the acknowledgement.
 *
 * The peer is not trusted. An SEV guest completes only after RECEIVE_START … RECEIVE_FINISH
 * succeeded (else it would run unencrypted); anything else fails the migration and discards
 * the guest. Peer-driven work never holds the event loop for more than `sliceMs`: past it the
 * source is paused and the rest runs on a later turn (setImmediate).
 */
import { performance } from 'node:perf_hooks';
import type { Guest } from '../guest/guest.js';
import type { ConfidentialGuest } from '../sev/guest-kinds.js';
import type { SevGuest } from '../sev/sev-guest.js';
import { Policy } from '../../abi/policy.js';
import type { IncomingPacket } from '../firmware/send-receive.js';
import { PageBatch } from '../memory/bulk/page-batch.js';
import type { Metrics } from '../observability/metrics.js';
import type { MigrationState } from './migration-state.js';
import { StreamParser, type StreamParserOptions } from './stream-parser.js';
import { StreamErrorCode as Code, StreamFormatError } from './stream-errors.js';
import type { StreamRecord } from './stream.js';

const PAGE = 4096;
/** Shared pages marked between two looks at the clock. */
const PAGES_PER_STEP = 4096;

export interface LoaderOptions {
  /** Longest run of peer-driven work in one event-loop turn (ms). */
  sliceMs?: number;
  /** Parser limits; the shared-range bounds default to the guest's RAM. */
  parser?: StreamParserOptions;
  /** The daemon's metrics (stream bytes in). */
  metrics?: Metrics;
}

export const DEFAULT_SLICE_MS = 4;

/** The stream's transport, as far as the loader drives it. */
export interface StreamSource {
  pause(): void;
  resume(): void;
  /** The one-byte acknowledgement and the end of the stream (sockets). */
  ack(): void;
  destroy(): void;
}

/** A shared range being marked, page by page across turns. */
interface SharedWork {
  ranges: [number, number][];
  i: number;
  pfn: number;
}

export class StreamLoader {
  readonly #parser: StreamParser;
  readonly #sliceMs: number;
  readonly #metrics: Metrics | undefined;
  #pending: IncomingPacket[] = [];
  #shared: SharedWork | null = null;
  #sawRamSize = false;
  #done = false;
  #ended = false;
  #scheduled = false;
  #activated = false;
  /** The guest's SEV context as a migration target (SNP guests are refused at the config record). */
  readonly #target: SevGuest | null;

  constructor(
    private readonly guest: Guest,
    private readonly sev: ConfidentialGuest | null,
    private readonly st: MigrationState,
    private readonly source: StreamSource,
    options: LoaderOptions = {},
  ) {
    this.#sliceMs = options.sliceMs ?? DEFAULT_SLICE_MS;
    this.#target = sev?.kind === 'sev-snp' ? null : sev;
    this.#metrics = options.metrics;
    const ram = this.ramRegions();
    const pages = ram.reduce((a, r) => a + r.size / PAGE, 0);
    const end = Math.max(0, ...ram.map((r) => (r.base + r.size) / PAGE));
    // A guest cannot share more ranges than it has pages, nor pages beyond its RAM.
    this.#parser = new StreamParser({ maxSharedRanges: Math.min(pages, 1 << 20), maxPfn: end, ...options.parser });
  }

  private ramRegions() {
    return this.guest.memory.regions.filter((x) => x.name.startsWith('pc.ram'));
  }

  data(chunk: Buffer): void {
    if (this.#done) return;
    this.#parser.push(chunk);
    if (!this.#activated) {
      this.#activated = true;
      this.st.setStatus('active');
    }
    if (!this.#scheduled) this.#slice();
  }

  /** The source ended (EOF, close) or failed; records already received are still loaded first. */
  end(err?: Error): void {
    if (this.#done) return;
    if (err) return this.#fail(err);
    this.#ended = true;
    if (!this.#scheduled) this.#slice();
  }

  /** The guest goes away (daemon shutdown): stop without touching it. */
  abort(): void {
    this.#done = true;
  }

  /** Up to sliceMs of work; the rest on a later turn with the source paused. */
  #slice(): void {
    this.#scheduled = false;
    if (this.#done) return;
    const deadline = performance.now() + this.#sliceMs;
    try {
      for (;;) {
        if (performance.now() >= deadline) {
          this.#flush();
          this.source.pause();
          this.#scheduled = true;
          setImmediate(() => this.#slice());
          return;
        }
        if (this.#shared) {
          this.#markShared(this.#shared, deadline);
          continue;
        }
        const rec = this.#parser.next();
        if (!rec) {
          this.#flush();
          if (this.#ended) throw new StreamFormatError(Code.ENDED_EARLY, 'load of migration failed: Input/output error');
          this.source.resume();
          return;
        }
        if (this.#take(rec)) return this.#finish();
      }
    } catch (e) {
      this.#fail(e);
    }
  }

  #flush(): void {
    if (!this.#pending.length) return;
    const packets = this.#pending;
    this.#pending = [];
    this.#target?.receiveUpdateData(packets);
  }

  #count(bytes: number): void {
    this.st.ram.transferred += bytes;
    this.#metrics?.migrationBytes.incKey('in', { direction: 'in' }, bytes);
  }

  /** Takes one record; true at the device state that ends the stream. */
  #take(rec: StreamRecord): boolean {
    if (!this.#sawRamSize && rec.kind !== 'config') {
      throw new StreamFormatError(Code.NO_RAM_SIZE, 'load of migration failed: Invalid argument');
    }
    if (rec.kind === 'encrypted' && !rec.start && rec.trans.length === PAGE && this.sev?.state === 'receive-update') {
      this.#count(rec.trans.length + rec.header.length);
      this.#pending.push({ gpa: rec.gpa, header: rec.header, trans: rec.trans });
      if (this.#pending.length === PageBatch.CAPACITY) this.#flush();
      return false;
    }
    this.#flush();
    return this.#apply(rec);
  }

  #apply(rec: StreamRecord): boolean {
    const mem = this.guest.memory;
    const sev = this.#target;
    switch (rec.kind) {
      case 'config':
        this.#count(8);
        this.#ramSize(rec);
        return false;
      case 'encrypted':
        this.#count(rec.trans.length + rec.header.length);
        if (!sev) throw new StreamFormatError(Code.SEV_MISMATCH, 'sevd: encrypted page for a guest without SEV');
        if (rec.start) {
          // The stream's policy replaces the guest's: it may not turn an SEV guest into SEV-ES.
          if (rec.start.policy & Policy.ES) throw new StreamFormatError(Code.UNSUPPORTED, 'SEV: Migration is not implemented');
          sev.receiveStart(rec.start.policy, rec.start.pdh, rec.start.session);
        }
        if (sev.state !== 'receive-update') throw new StreamFormatError(Code.NO_RECEIVE_START, 'encrypted page before the SEND_START record');
        sev.receiveUpdateData([{ gpa: rec.gpa, header: rec.header, trans: rec.trans }]);
        return false;
      case 'page':
      case 'zero':
        this.#count(rec.kind === 'page' ? PAGE : 8);
        if (!mem.regionOf(rec.gpa, PAGE)) throw new StreamFormatError(Code.PAGE_OUTSIDE_RAM, `page at 0x${rec.gpa.toString(16)} is outside guest memory`);
        if (sev) mem.setPrivate(rec.gpa, PAGE, false);
        mem.write(rec.gpa, rec.kind === 'page' ? rec.data : Buffer.alloc(PAGE));
        return false;
      case 'shared':
        this.#count(12 * rec.ranges.length);
        this.#needReceiveStart('shared-regions list');
        // Every range is checked before any page is marked.
        for (const [a, b] of rec.ranges) {
          if (!this.ramRegions().some((r) => a * PAGE >= r.base && b * PAGE <= r.base + r.size)) {
            throw new StreamFormatError(Code.RANGE_OUTSIDE_RAM, `shared-regions range [0x${a.toString(16)}, 0x${b.toString(16)}) is outside guest RAM`);
          }
        }
        if (rec.ranges.length) this.#shared = { ranges: rec.ranges, i: 0, pfn: rec.ranges[0]![0] };
        return false;
      case 'eos':
        this.#count(8);
        return false;
      case 'device':
        this.#count(8);
        if (sev) {
          this.#needReceiveStart('end of the stream');
          sev.receiveFinish();
        }
        return true;
    }
  }

  /** The RAM size record opens the stream: same size, same kind of guest. */
  #ramSize(rec: Extract<StreamRecord, { kind: 'config' }>): void {
    const ram = this.ramRegions().reduce((a, x) => a + x.size, 0);
    if (this.#sawRamSize) throw new StreamFormatError(Code.NO_RAM_SIZE, 'load of migration failed: Invalid argument');
    this.#sawRamSize = true;
    if (rec.ramBytes !== ram) throw new StreamFormatError(Code.RAM_SIZE, `sevd: incoming guest memory size ${ram} differs from the stream's ${rec.ramBytes}`);
    const sevStream = rec.config['sev'] === true;
    if (sevStream && !this.sev) throw new StreamFormatError(Code.SEV_MISMATCH, 'sevd: the stream carries an SEV guest but this guest has no sev-guest object');
    if (!sevStream && this.sev) throw new StreamFormatError(Code.SEV_MISMATCH, 'sevd: the stream carries a guest without SEV but this guest has a sev-guest object');
    // QEMU's blockers: SEV-ES and SNP guests are never migrated, so never received either.
    if (this.sev?.kind === 'sev-snp') throw new StreamFormatError(Code.UNSUPPORTED, 'SEV-SNP: Migration is not implemented');
    if (this.sev?.es) throw new StreamFormatError(Code.UNSUPPORTED, 'SEV: Migration is not implemented');
  }

  #needReceiveStart(what: string): void {
    if (this.sev && this.sev.state !== 'receive-update') {
      throw new StreamFormatError(Code.NO_RECEIVE_START, `SEV: ${what} without RECEIVE_START: the guest would run unencrypted`);
    }
    if (!this.sev) throw new StreamFormatError(Code.SEV_MISMATCH, `sevd: ${what} for a guest without SEV`);
  }

  /** Marks shared pages until the deadline, PAGES_PER_STEP at a time. */
  #markShared(w: SharedWork, deadline: number): void {
    const mem = this.guest.memory;
    while (performance.now() < deadline) {
      const [, end] = w.ranges[w.i]!;
      const n = Math.min(PAGES_PER_STEP, end - w.pfn);
      mem.setPrivate(w.pfn * PAGE, n * PAGE, false);
      w.pfn += n;
      if (w.pfn < end) continue;
      if (++w.i === w.ranges.length) {
        this.#shared = null;
        return;
      }
      w.pfn = w.ranges[w.i]![0];
    }
  }

  /** The stream is loaded (and RECEIVE_FINISH done): acknowledge, then run or pause. */
  #finish(): void {
    this.#done = true;
    this.source.ack();
    this.st.endedAt = Date.now();
    this.st.setStatus('completed');
    this.guest.incomingDone(() => this.sev?.beforeFirstRun());
  }

  /** A broken stream or a refused packet: the half-received guest is discarded (context, ASID, memory). */
  #fail(e: unknown): void {
    this.#done = true;
    this.#pending = [];
    this.#shared = null;
    this.source.destroy();
    if (this.sev) this.sev.discard();
    else this.guest.memory.discard();
    this.st.errorDesc = e instanceof Error ? e.message : String(e);
    this.st.endedAt = Date.now();
    this.st.setStatus('failed');
  }
}
