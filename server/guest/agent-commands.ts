/**
 * The guest agent (docs/interface.md §8): what software inside the guest sees of its memory.
 * Every command needs a running guest (docs/interface.md §8).
 */
import type { Handler, Handlers } from '../dispatch/dispatcher.js';
import type { SessionContext } from '../dispatch/common-commands.js';
import { QmpError } from '../errors/qmp-error.js';
import { PAGE_SIZE } from '../memory/sparse-memory.js';
import type { Guest } from './guest.js';
import { VMSA_REGION } from './layout.js';
import type { SnpGuestDriver } from './snp-guest-driver.js';
import { decodeCertTable } from '../../abi/snp/cert-table.js';

export interface AgentContext extends SessionContext {
  guest: Guest;
  /** Guest-visible memory access (the SEV layer decrypts private pages). */
  view: GuestMemoryView;
  /** What the guest's MSR_AMD64_SEV_STATUS says (and its VMSA's SEV_FEATURES). */
  sevStatus(): { sev: boolean; es: boolean; snp: boolean; features: number };
  /** An SNP guest's sev-guest driver and the host's certificate table; null otherwise. */
  snp: { driver: SnpGuestDriver; certTable: Buffer | null } | null;
}

export interface GuestMemoryView {
  read(gpa: number, len: number): Buffer;
  write(gpa: number, data: Buffer): void;
  setPrivate(gpa: number, size: number, priv: boolean): void;
  secrets(): { guid: string; data: string }[];
}

export const AGENT_VERSION = '0.1.0';
const MAX_READ = 1 << 20;

function requireRunning(guest: Guest): void {
  if (!guest.running) throw QmpError.generic('Guest is not running');
}

function checkRange(guest: Guest, gpa: unknown, size: number): number {
  const region = typeof gpa === 'number' ? guest.memory.regionOf(gpa, Math.max(size, 1)) : undefined;
  // VMSA frames are the firmware's: no guest software reaches them.
  if (!region || region.name === VMSA_REGION) {
    throw QmpError.generic(`Invalid guest physical address 0x${BigInt(gpa as number).toString(16)}/size ${size}`);
  }
  return gpa as number;
}

/** docs/interface.md §8: every agent command needs a running guest (a stopped guest's agent cannot answer). */
export function agentHandlers(): Handlers<AgentContext> {
  // Each handler keeps its own argument type; the wrapper only adds the check in front.
  type AnyHandler = (args: never, ctx: AgentContext) => ReturnType<Handler<AgentContext>>;
  const wrap = (h: AnyHandler): AnyHandler => (args, ctx) => (requireRunning(ctx.guest), h(args, ctx));
  return Object.fromEntries(Object.entries(commands()).map(([name, h]) => [name, wrap(h as AnyHandler)])) as Handlers<AgentContext>;
}

function commands(): Handlers<AgentContext> {
  return {
    'guest-ping': () => {},
    'guest-snp-report': (args, { snp }) => {
      if (!snp) throw QmpError.generic('SEV-SNP is not active');
      const data = Buffer.from(args['report-data'] ?? '', 'base64');
      if (data.length > 64) throw QmpError.generic("Parameter 'report-data' must be at most 64 bytes");
      const reportData = Buffer.alloc(64);
      data.copy(reportData);
      const report = snp.driver.report(reportData, args['vmpl'] ?? 0).toString('base64');
      // The extended request: the host's certificate table, when it has one.
      if (args['extended'] !== true || !snp.certTable) return { report };
      return { report, certs: decodeCertTable(snp.certTable).map((c) => ({ guid: c.guid, data: c.data.toString('base64') })) };
    },
    'guest-snp-derive-key': (args, { snp }) => {
      if (!snp) throw QmpError.generic('SEV-SNP is not active');
      const key = snp.driver.deriveKey({
        rootKeySelect: args['root-key'] === 'vmrk' ? 1 : 0,
        guestFieldSelect: BigInt(args['guest-field-select'] ?? 0),
        vmpl: args['vmpl'] ?? 0,
        guestSvn: args['guest-svn'] ?? 0,
        tcbVersion: BigInt(args['tcb-version'] ?? 0),
      });
      return { key: key.toString('base64') };
    },
    'guest-snp-message': (args, { snp }) => {
      if (!snp) throw QmpError.generic('SEV-SNP is not active');
      const request = Buffer.from(args['request'], 'base64');
      if (request.length > 4096) throw QmpError.generic("Parameter 'request' must be at most 4096 bytes");
      return { response: snp.driver.passThrough(request).toString('base64') };
    },
    'guest-sev-features': (_a, { sevStatus }) => {
      const s = sevStatus();
      return { sev: s.sev, 'sev-es': s.es, 'sev-snp': s.snp, 'sev-features': s.features };
    },
    'guest-info': (_a, ctx) => {
      return {
        version: AGENT_VERSION,
        supported_commands: ctx.session.monitor.dispatcher
          .commandNames()
          .sort()
          .map((name: string) => ({ name, enabled: true, 'success-response': true })),
      };
    },
    'guest-memory-read': (args, { guest, view }) => {
      const size = args['size'];
      if (size > MAX_READ) throw QmpError.generic(`Parameter 'size' must be at most ${MAX_READ}`);
      const gpa = checkRange(guest, args['gpa'], size);
      return { data: view.read(gpa, size).toString('base64') };
    },
    'guest-memory-write': (args, { guest, view }) => {
      const data = Buffer.from(args['data'], 'base64');
      const gpa = checkRange(guest, args['gpa'], data.length);
      view.write(gpa, data);
    },
    'guest-get-secrets': (_a, { view }) => {
      return view.secrets();
    },
    'guest-set-memory-attributes': (args, { guest, view }) => {
      const size = Number(args['size']);
      const gpa = checkRange(guest, args['gpa'], size);
      if (gpa % PAGE_SIZE !== 0 || size % PAGE_SIZE !== 0 || size === 0) {
        throw QmpError.generic('gpa and size must be non-zero multiples of the page size (4096)');
      }
      view.setPrivate(gpa, size, args['private']);
    },
  };
}
