/**
 * The firmware's guest contexts (SEV API 55766, guest management: GSTATE and handles): handles, guest states, the command
 * table per state, ASID bindings and the check order every guest command follows.
 */
import { createHash, type Hash } from 'node:crypto';
import { FirmwareError, FwStatus, type SevCommand } from './status.js';
import type { Platform } from './platform.js';
import { ctrKey } from '../memory/bulk/page-batch.js';

export const GState = { UNINIT: 0, LUPDATE: 1, LSECRET: 2, RUNNING: 3, SUPDATE: 4, RUPDATE: 5, SENT: 6 } as const;
export type GStateCode = (typeof GState)[keyof typeof GState];

/** Guest commands allowed in each guest state (§5.1). */
const ALLOWED: Record<number, ReadonlySet<SevCommand>> = {
  [GState.LUPDATE]: new Set(['LAUNCH_UPDATE_DATA', 'LAUNCH_UPDATE_VMSA', 'LAUNCH_MEASURE', 'DBG_DECRYPT', 'DBG_ENCRYPT', 'ACTIVATE', 'DEACTIVATE', 'DECOMMISSION', 'GUEST_STATUS']),
  [GState.LSECRET]: new Set(['LAUNCH_SECRET', 'LAUNCH_FINISH', 'ATTESTATION', 'DBG_DECRYPT', 'DBG_ENCRYPT', 'ACTIVATE', 'DEACTIVATE', 'DECOMMISSION', 'GUEST_STATUS']),
  [GState.RUNNING]: new Set(['SEND_START', 'ATTESTATION', 'DBG_DECRYPT', 'DBG_ENCRYPT', 'ACTIVATE', 'DEACTIVATE', 'DECOMMISSION', 'GUEST_STATUS']),
  [GState.SUPDATE]: new Set(['SEND_UPDATE_DATA', 'SEND_FINISH', 'SEND_CANCEL', 'ATTESTATION', 'DBG_DECRYPT', 'DBG_ENCRYPT', 'ACTIVATE', 'DEACTIVATE', 'DECOMMISSION', 'GUEST_STATUS']),
  [GState.RUPDATE]: new Set(['RECEIVE_UPDATE_DATA', 'RECEIVE_FINISH', 'ATTESTATION', 'DBG_DECRYPT', 'DBG_ENCRYPT', 'ACTIVATE', 'DEACTIVATE', 'DECOMMISSION', 'GUEST_STATUS']),
  [GState.SENT]: new Set(['DEACTIVATE', 'DECOMMISSION', 'GUEST_STATUS']),
};

/** TEK′ and TIK′ of a migration, with TEK′'s counter-mode context for batched packets. */
export interface TransportKeys {
  tek: Buffer;
  tik: Buffer;
  ctr: ReturnType<typeof ctrKey>;
}

export function transportKeys(tek: Buffer, tik: Buffer): TransportKeys {
  return { tek, tik, ctr: ctrKey(tek) };
}

export interface GuestFwContext {
  readonly handle: number;
  policy: number;
  state: GStateCode;
  /** The VM encryption key; shared between contexts launched with a handle. */
  readonly vek: Buffer;
  asid: number | null;
  tek: Buffer;
  tik: Buffer;
  /** GCTX.LD: the running SHA-256 of everything measured. */
  ld: Hash;
  /** LD as finalised by LAUNCH_MEASURE (zeros for a guest received by migration). */
  launchDigest: Buffer | null;
  measure: Buffer | null;
  /** Migration transport keys (TEK′, TIK′) while sending or receiving. */
  transport: TransportKeys | null;
  /** Guest frames holding the context's VMSAs (SEV-ES): never decrypted for the host. */
  vmsaPfns: Set<number>;
}

export class ContextTable {
  private readonly contexts = new Map<number, GuestFwContext>();
  private nextHandle = 1;
  /** ASID → handle bound to it. */
  readonly asidOwner = new Map<number, number>();
  /** ASIDs deactivated since the last DF_FLUSH. */
  readonly dfFlushRequired = new Set<number>();

  constructor(private readonly platform: Platform) {}

  create(policy: number, vek: Buffer, state: GStateCode): GuestFwContext {
    const ctx: GuestFwContext = {
      handle: this.nextHandle++, policy, state, vek, asid: null,
      tek: Buffer.alloc(16), tik: Buffer.alloc(16), ld: createHash('sha256'), launchDigest: null, measure: null, transport: null, vmsaPfns: new Set(),
    };
    this.contexts.set(ctx.handle, ctx);
    this.platform.contextCreated();
    return ctx;
  }

  delete(ctx: GuestFwContext): void {
    if (this.contexts.delete(ctx.handle)) this.platform.contextRemoved();
  }

  /** Every context is gone (platform SHUTDOWN). */
  clear(): void {
    this.contexts.clear();
    this.asidOwner.clear();
  }

  get size(): number {
    return this.contexts.size;
  }

  peek(handle: number): GuestFwContext | undefined {
    return this.contexts.get(handle);
  }

  /**
   * §5.2 steps 1–4: platform state, handle, guest state, active guest. Returns the context.
   */
  check(cmd: SevCommand, handle: number, opts: { needsActive?: boolean } = {}): GuestFwContext {
    this.platform.require(cmd, ['INIT', 'WORKING']);
    const ctx = this.contexts.get(handle);
    if (!ctx) throw new FirmwareError(cmd, FwStatus.INVALID_GUEST);
    if (!ALLOWED[ctx.state]?.has(cmd)) throw new FirmwareError(cmd, FwStatus.INVALID_GUEST_STATE);
    if (opts.needsActive && ctx.asid === null) throw new FirmwareError(cmd, FwStatus.INACTIVE);
    return ctx;
  }
}
