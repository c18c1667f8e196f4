/** One VM's migration: its state, the outgoing or incoming run, and the QEMU-level checks. */
import { QmpError } from '../errors/qmp-error.js';
import type { OutValue } from '../qmp/json/writer.js';
import type { Guest } from '../guest/guest.js';
import type { ConfidentialGuest } from '../sev/guest-kinds.js';
import { MigrationState } from './migration-state.js';
import { OutgoingMigration, type OwnCerts } from './outgoing.js';
import { IncomingMigration } from './incoming.js';
import { parseMigrationUri, type MigrationUri } from './uri.js';
import { strerror } from '../util/strerror.js';
import type { Origin, PathPolicy } from '../confinement/paths.js';
import type { FaultRegistry } from '../faults/fault-registry.js';
import type { Metrics } from '../observability/metrics.js';

export class VmMigration {
  readonly state: MigrationState;
  private outgoing: OutgoingMigration | null = null;
  readonly incoming: IncomingMigration;
  /** Resolves when the current outgoing run ends (tests, shutdown). */
  running: Promise<void> = Promise.resolve();

  constructor(
    private readonly guest: Guest,
    private readonly sev: ConfidentialGuest | null,
    private readonly own: () => OwnCerts,
    private readonly modernUriErrors: boolean,
    private readonly paths: PathPolicy,
    private readonly faults?: FaultRegistry,
    private readonly metrics?: Metrics,
  ) {
    this.state = new MigrationState((event, data) => guest.monitor?.emitEvent(event, data as OutValue));
    this.incoming = new IncomingMigration(guest, sev, this.state, { metrics });
  }

  /** Parsed, with a file: or unix: path checked against the migration directories. */
  private uri(text: string, origin: Origin): MigrationUri {
    const u = parseMigrationUri(text);
    if (!u) throw QmpError.generic(this.modernUriErrors ? `unknown migration protocol: ${text}` : "Parameter 'uri' expects a valid migration protocol");
    return u.kind === 'tcp' ? u : { ...u, path: this.paths.resolve('migration', u.path, origin) };
  }

  migrate(uriText: string | undefined, origin: Origin): void {
    if (uriText === undefined) throw QmpError.generic("need either 'uri' or 'channels' argument");
    if (this.state.active) throw QmpError.generic("There's a migration process in progress");
    if (this.guest.runState === 'inmigrate') throw QmpError.generic('Guest is waiting for an incoming migration');
    // QEMU never merged SEV-ES or SNP migration: its blockers' texts, before anything is sent.
    const sev = this.sev;
    if (sev?.kind === 'sev-snp') throw QmpError.generic('SEV-SNP: Migration is not implemented');
    if (sev?.es) throw QmpError.generic('SEV: Migration is not implemented');
    const uri = this.uri(uriText, origin);
    // A unix: socket is reached through its checked, held directory for the whole run.
    // (A directory that cannot be opened: the connect fails as it would, in the migration.)
    let held: { path: string; release(): void } | undefined;
    try {
      if (uri.kind === 'unix') held = this.paths.holdName('migration', uri.path, origin);
    } catch (e) {
      if (e instanceof QmpError) throw e;
    }
    const target: MigrationUri = uri.kind === 'unix' && held ? { ...uri, path: held.path } : uri;
    this.outgoing = new OutgoingMigration(this.guest, sev, this.state, target, this.own, (p) => this.paths.openForWrite('migration', p, origin),
      this.faults?.migration(this.guest.name), this.metrics);
    this.running = this.outgoing.run().finally(() => held?.release());
  }

  cancel(): void {
    this.outgoing?.cancel();
  }

  /** `origin`: who named the URI (a guest's `incoming` from the config is the operator's). */
  async startIncoming(uriText: string | undefined, fromCommand: boolean, origin: Origin): Promise<void> {
    if (fromCommand) {
      if (this.guest.runState !== 'inmigrate') throw QmpError.generic("'-incoming' was not specified on the command line");
      if (this.incoming.started) throw QmpError.generic('The incoming migration has already been started');
    }
    if (uriText === undefined) throw QmpError.generic("need either 'uri' or 'channels' argument");
    const uri = this.uri(uriText, origin);
    // Confined names are opened (file:) or bound (unix:) through their checked directory, so
    // a directory swapped for a symlink after the check leads nowhere outside. Failures get
    // QEMU's texts (qio_channel_file_new_path, unix_listen_saddr, inet_listen_saddr), with
    // the name the client gave.
    if (uri.kind === 'file') {
      let fd: number;
      try {
        fd = this.paths.openForRead('migration', uri.path, origin);
      } catch (e) {
        if (e instanceof QmpError) throw e;
        throw QmpError.generic(`Unable to open ${uri.path}: ${strerror(e)}`);
      }
      return this.incoming.start(uri, fd);
    }
    let held: { path: string; release(): void } | undefined;
    try {
      if (uri.kind === 'unix') held = this.paths.holdName('migration', uri.path, origin);
      await this.incoming.start(uri.kind === 'unix' && held ? { ...uri, path: held.path } : uri);
    } catch (e) {
      if (e instanceof QmpError) throw e;
      throw QmpError.generic(`${uri.kind === 'unix' ? `Failed to bind socket to ${uri.path}` : 'Failed to bind socket'}: ${strerror(e)}`);
    } finally {
      held?.release();
    }
  }

  setCapabilities(caps: { capability: string; state: boolean }[]): void {
    if (this.state.active) throw QmpError.generic("There's a migration process in progress");
    for (const c of caps) this.state.capabilities.set(c.capability, c.state);
  }

  close(): void {
    this.outgoing?.cancel();
    this.incoming.close();
  }
}
