/**
 * The daemon: the control monitor and its socket, the WebSocket listener, the guest
 * registry, start-up from the config and an orderly shutdown.
 */
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { schema } from '../../schema/index.js';
import { compiledSchema } from '../dispatch/compiled-schema.js';
import { Dispatcher } from '../dispatch/dispatcher.js';
import { atLeast, parseVersion } from '../dispatch/version.js';
import { Monitor } from '../qmp/monitor.js';
import { fromPlain } from '../qmp/json/qobject.js';
import { InputVisitor } from '../dispatch/input-visitor.js';
import { QmpError } from '../errors/qmp-error.js';
import { UnixListener } from '../transport/unix-socket.js';
import { WebSocketListener } from '../transport/websocket.js';
import { ConfigError } from '../config/config.js';
import type { SevdConfig } from '../config/defaults.js';
import { controlHandlers, type ControlContext } from './control-commands.js';
import { GuestRegistry } from './registry.js';
import { SpecError } from './guest-spec.js';
import { GuestStore } from './guest-store.js';
import type { HostContext } from './host.js';
import { ConnectionBudget } from '../transport/connection-budget.js';
import { resolveGid } from '../transport/group.js';
import { Metrics } from '../observability/metrics.js';
import { instrumentFirmware } from '../observability/instrument.js';
import { DEVICE_COMMANDS, GUEST_COMMANDS, SEND_RECEIVE_BATCHES, SEND_RECEIVE_COMMANDS, SNP_GUEST_COMMANDS } from '../firmware/commands.js';
import { Platform } from '../firmware/platform.js';
import { SevDevice } from '../firmware/sev-device.js';
import { GuestFirmware } from '../firmware/guest-firmware.js';
import { SnpGuestFirmware } from '../firmware/snp-guest-firmware.js';
import { SendReceive } from '../firmware/send-receive.js';
import { MemoryController } from '../memory/memory-controller.js';
import { AsidPool } from '../kvm/asid-pool.js';
import { PathPolicy } from '../confinement/paths.js';
import { FaultRegistry } from '../faults/fault-registry.js';
import { Kds } from '../kds/kds.js';
import { generationFeatures } from '../firmware/generations.js';
import { prepareHost, type HostSetup } from './host-setup.js';
import { vmDispatchers } from './vm.js';
import { monitorHooks } from './monitor-hooks.js';
import { LaunchSocket } from './launch-socket.js';

export const SEVD_VERSION = '0.1.0';

/** The operator view's static files (the repository's web/, beside dist/). */
const WEB_ROOT = fileURLToPath(new URL('../../../web/', import.meta.url));

/** Without a configured split, an ES-capable host keeps a fifth of its ASIDs for SEV-ES guests (as a BIOS's SEV-ES ASID space limit would). */
function defaultMinSevAsid(generation: SevdConfig['platform']['generation'], maxGuests: number): number {
  return generationFeatures(generation).es ? 1 + Math.floor(maxGuests / 5) : 1;
}

function socketGid(group: string | number | null): { gid?: number } {
  try {
    const gid = resolveGid(group);
    return gid === undefined ? {} : { gid };
  } catch (e) {
    throw new ConfigError(`sevd: $.socketGroup: ${(e as Error).message}`);
  }
}

const absolute = (c: SevdConfig): SevdConfig => ({
  ...c,
  runDir: resolve(c.runDir),
  stateDir: resolve(c.stateDir),
  paths: {
    ...c.paths,
    images: c.paths.images.map((d) => resolve(d)),
    inputs: c.paths.inputs.map((d) => resolve(d)),
    dumps: c.paths.dumps === null ? null : [c.paths.dumps].flat().map((d) => resolve(d)),
    migration: c.paths.migration === null ? null : [c.paths.migration].flat().map((d) => resolve(d)),
  },
});

export class Daemon {
  readonly host: HostContext;
  readonly registry: GuestRegistry;
  readonly control: Monitor<ControlContext>;
  readonly controlPath: string;
  /** This daemon's metrics: another daemon in the process keeps its own. */
  readonly metrics = new Metrics();
  private controlListener?: UnixListener;
  private launch?: LaunchSocket;
  private ws?: WebSocketListener;
  wsUrl: string | null = null;
  private stopping?: Promise<void>;
  /** The KDS-compatible endpoint of an SNP chip (docs/interface.md §11). */
  private readonly kds: Kds | null;
  /** Resolves once the daemon has shut down (quit, signal). */
  readonly done: Promise<void>;
  private resolveDone!: () => void;

  /**
   * Locks the directories, becomes the configured user, then builds the daemon (whose
   * platform reads and may write the NV state): nothing is touched by a daemon that is
   * refused.
   */
  static async open(config: SevdConfig, log: Logger, source = 'embedded default'): Promise<Daemon> {
    config = absolute(config);
    const setup = await prepareHost(config);
    try {
      return new Daemon(config, log, source, setup);
    } catch (e) {
      await Promise.all(setup.locks.map((l) => l.release()));
      throw e;
    }
  }

  private constructor(config: SevdConfig, private readonly log: Logger, private readonly source: string, private readonly setup: HostSetup) {
    const version = parseVersion(config.qemuVersion);
    const p = config.platform;
    const platform = new Platform({
      generation: p.generation, apiMajor: p.apiMajor, apiMinor: p.apiMinor, build: p.build, seed: p.seed, stateDir: config.stateDir, snp: p.snp,
    });
    // sevd's choice: an idle host sits in INIT, as if KVM had started a guest before.
    platform.init();
    const metrics = this.metrics;
    const faults = new FaultRegistry((e) => this.control.emitEvent('SEVD_FAULT', { id: e.id, target: e.target, detail: e.detail }), metrics);
    const boundary = { faults, metrics, guestOfHandle: (h: number) => this.registry.list().find((vm) => vm.sev?.handle === h)?.name ?? null };
    const device = instrumentFirmware(new SevDevice(platform), DEVICE_COMMANDS, boundary);
    const memory = new MemoryController();
    memory.startHelper();
    const firmware = instrumentFirmware(
      new GuestFirmware(platform, memory, { maxAsid: p.maxGuests, minSevAsid: p.minSevAsid ?? defaultMinSevAsid(p.generation, p.maxGuests) }),
      GUEST_COMMANDS, boundary);
    const snpFirmware = instrumentFirmware(new SnpGuestFirmware(platform, memory), SNP_GUEST_COMMANDS, boundary);
    this.host = {
      sev: device,
      sevHost: {
        device, firmware, snpFirmware,
        // A page batch counts one command per packet.
        sendReceive: instrumentFirmware(new SendReceive(firmware), SEND_RECEIVE_COMMANDS, { ...boundary, perItem: SEND_RECEIVE_BATCHES }),
        memory, asids: new AsidPool(firmware), cbitpos: p.cbitpos, reducedPhysBits: p.reducedPhysBits, generation: p.generation,
        init2: atLeast(version, '9.1.0'),
      },
      config,
      version,
      packageName: `sevd ${SEVD_VERSION}`,
      sessionLimits: {
        maxPendingCommands: config.limits.maxPendingCommands,
        maxConsecutiveErrors: config.limits.maxConsecutiveErrors,
        maxTokenBytes: config.limits.maxMessageBytes,
        negotiationTimeoutMs: config.limits.negotiationTimeoutMs,
      },
      socketOwner: { mode: config.socketMode, ...socketGid(config.socketGroup) },
      budget: new ConnectionBudget({ total: config.limits.maxConnections, perMonitor: config.limits.maxConnectionsPerMonitor }, metrics),
      paths: new PathPolicy(setup.dirs, config.paths.confine, metrics),
      faults,
      metrics,
      dispatchers: vmDispatchers(version),
      log,
    };
    this.registry = new GuestRegistry(this.host);
    const snp = platform.snp;
    this.kds = snp
      ? new Kds(
          { product: snp.product, root: platform.emulatedRoot, chipId: () => platform.getId({ len: 64 }), vcekPublicKey: (tcb) => snp.vcekPublicKey(tcb) },
          { cacheSize: config.limits.kdsVcekCache, newVcekPerSecond: config.limits.kdsNewVcekPerSecond, newVcekBurst: config.limits.kdsNewVcekBurst },
        )
      : null;
    this.controlPath = join(config.runDir, 'sevd.qmp');
    this.control = new Monitor({
      kind: 'control',
      dispatcher: new Dispatcher(compiledSchema(schema, 'control', version), controlHandlers()),
      context: {
        registry: this.registry, requestShutdown: (r) => void this.shutdown(r), sev: this.host.sev, cbitpos: config.platform.cbitpos, paths: this.host.paths,
        faults,
        asids: { max: firmware.asids.maxAsid, minSev: firmware.asids.minSevAsid },
      },
      version,
      packageName: this.host.packageName,
      limits: this.host.sessionLimits,
      log,
      owner: null,
      hooks: monitorHooks('control', null, faults, metrics),
    });
    this.done = new Promise((r) => (this.resolveDone = r));
    metrics.watchEventLoop();
    metrics.gauge('sevd_connections', 'Open monitor connections, by transport.', () =>
      [...this.host.budget.byTransport].map(([transport, v]) => ({ l: { transport }, v })));
    metrics.gauge('sevd_guests', 'Guests, by run state and SEV state.', () => {
      const n = new Map<string, { l: Record<string, string>; v: number }>();
      for (const vm of this.registry.list()) {
        const l = { run_state: vm.guest.runState, sev_state: vm.sev?.state ?? 'none' };
        const k = JSON.stringify(l);
        n.set(k, { l, v: (n.get(k)?.v ?? 0) + 1 });
      }
      return [...n.values()];
    });
  }

  async start(): Promise<void> {
    const { config } = this.host;
    this.armConfigFaults();
    await this.startGuests();
    await this.restoreGuests();
    if (config.websocket) {
      const ws = config.websocket;
      this.ws = new WebSocketListener({
        host: ws.host,
        port: ws.port,
        token: ws.token,
        tokens: ws.tokens,
        allowedOrigins: ws.allowedOrigins,
        allowedHosts: ws.allowedHosts,
        metricsToken: ws.metricsToken,
        route: (path) => this.route(path),
        budget: this.host.budget,
        metrics: this.metrics,
        tls: this.setup.tls,
        webRoot: WEB_ROOT,
        routes: (app) => this.kds?.register(app),
      });
      this.wsUrl = await this.ws.listen();
    }
    // The launch socket (docs/interface.md §15): its own group and mode.
    const mode = typeof config.launch.mode === 'string' ? parseInt(config.launch.mode, 8) : config.launch.mode;
    let launchGid;
    try {
      launchGid = resolveGid(config.launch.group);
    } catch (e) {
      throw new ConfigError(`sevd: $.launch.group: ${(e as Error).message}`);
    }
    this.launch = await LaunchSocket.listen(join(config.runDir, 'launch.qmp'), this.registry, this.host, { mode, ...(launchGid === undefined ? {} : { gid: launchGid }) });
    // Ready means the control socket accepts connections: it comes up last.
    this.controlListener = await UnixListener.listen(this.controlPath, this.control, { ...this.host.socketOwner, budget: this.host.budget });
    this.log.info(
      { control: this.controlPath, launch: join(config.runDir, 'launch.qmp'), guests: this.registry.list().map((v) => ({ name: v.name, qmp: v.qmpPath, qga: v.qgaPath })), websocket: this.wsUrl },
      'sevd ready',
    );
  }

  /** Faults from the config, checked like inject-fault: active from the first command. */
  private armConfigFaults(): void {
    const faultType = this.control.dispatcher.schema.resolve('Fault');
    for (const [i, raw] of this.host.config.faults.entries()) {
      try {
        this.host.faults.add(new InputVisitor().visitArguments(faultType, fromPlain(raw) as Map<string, never>));
      } catch (e) {
        if (e instanceof QmpError) throw new ConfigError(`sevd: ${this.source}: $.faults[${i}]: ${e.desc}`);
        throw e;
      }
    }
  }

  /** Guests from the config: checked like guest-add; a bad one is a config error. */
  private async startGuests(): Promise<void> {
    const specType = this.control.dispatcher.schema.resolve('GuestSpec');
    for (const [i, raw] of this.host.config.guests.entries()) {
      try {
        const args = new InputVisitor().visitArguments(specType, fromPlain(raw) as Map<string, never>);
        await this.registry.add(args, { paths: this.configPaths });
      } catch (e) {
        await this.registry.delAll('host-signal');
        if (e instanceof SpecError) throw new ConfigError(`sevd: ${this.source}: $.guests[${i}].${e.member}: ${e.desc}`);
        if (e instanceof QmpError) throw new ConfigError(`sevd: ${this.source}: $.guests[${i}]: ${e.desc}`);
        throw e;
      }
    }
  }

  /** Guests added over QMP before a restart come back paused, with a fresh launch. */
  private async restoreGuests(): Promise<void> {
    const store = new GuestStore(this.host.config.stateDir);
    this.registry.store = store;
    const specType = this.control.dispatcher.schema.resolve('GuestSpec');
    for (const spec of store.list()) {
      const name = String(spec['name']);
      if (this.registry.get(name)) continue;
      try {
        const args = new InputVisitor().visitArguments(specType, fromPlain({ ...spec, paused: true }) as Map<string, never>);
        await this.registry.add(args, { paths: this.configPaths });
      } catch (e) {
        this.log.warn({ guest: name, error: e instanceof Error ? e.message : String(e) }, 'guest definition not restored');
      }
    }
  }

  /** Guests from the config and restored definitions are the operator's: not confined. */
  private get configPaths() {
    return this.host.paths.access('config');
  }

  private route(path: string): { monitor: Monitor<any>; agent: boolean } | undefined {
    if (path === '/qmp') return { monitor: this.control, agent: false };
    const m = /^\/(qmp|qga)\/([^/]+)$/.exec(path);
    const vm = m ? this.registry.get(m[2]!) : undefined;
    if (!vm) return undefined;
    return m![1] === 'qmp' ? { monitor: vm.guest.monitor, agent: false } : { monitor: vm.guest.agent, agent: true };
  }

  /** SIGTERM/SIGINT/quit: stop accepting, SHUTDOWN to guests, remove sockets. */
  shutdown(reason: 'host-qmp-quit' | 'host-signal'): Promise<void> {
    this.stopping ??= (async () => {
      this.log.info({ reason }, 'sevd shutting down');
      await this.controlListener?.close();
      await this.launch?.close();
      await this.ws?.close();
      await this.registry.delAll(reason === 'host-qmp-quit' ? 'host-signal' : reason);
      this.host.sevHost.memory.stopHelper();
      this.metrics.close();
      await Promise.all(this.setup.locks.map((l) => l.release()));
      this.resolveDone();
    })();
    return this.stopping;
  }
}
