/**
 * Dispatch: one command table per monitor kind, built from the compiled schema and a
 * handler per command. Arguments go through the QAPI input visitor before a handler
 * sees them; results are put into schema order on the way out.
 */
import type { QDict } from '../qmp/json/qobject.js';
import type { OutValue } from '../qmp/json/writer.js';
import { InputVisitor, type Native } from './input-visitor.js';
import { shapeOutput } from './output-shaper.js';
import { introspect } from './introspect.js';
import { atLeast } from './version.js';
import type { CompiledSchema, RCommand } from './compiled-schema.js';
import { QmpError } from '../errors/qmp-error.js';
import { PersistError } from '../util/state-file.js';
import type { CommandArgs, CommandName } from './schema-types.js';

/** A state write that failed (disk full, I/O error, read-only): the command failed, nothing changed. */
function persistFailure(e: unknown): never {
  throw e instanceof PersistError ? QmpError.generic(e.message) : e;
}

export type Args = { [k: string]: Native };
export type HandlerResult = OutValue | undefined | void;
/** A command's handler, its arguments typed from the schema (schema-types.ts). */
export type Handler<C, N extends CommandName = CommandName> = (args: CommandArgs<N>, ctx: C) => HandlerResult | Promise<HandlerResult>;
/** A monitor's handlers, by command name. */
export type Handlers<C> = { [N in CommandName]?: Handler<C, N> };
/** What the table calls: the visitor has checked the arguments against the command's type. */
type CheckedHandler<C> = (args: Args, ctx: C) => HandlerResult | Promise<HandlerResult>;

export class Dispatcher<C> {
  private readonly table = new Map<string, { cmd: RCommand; handler: CheckedHandler<C> }>();
  private schemaCache: OutValue[] | undefined;
  private readonly visitorOpts;

  /** Handlers of commands that this version's schema lacks are ignored. */
  constructor(readonly schema: CompiledSchema, handlers: Handlers<C>) {
    for (const [name, cmd] of schema.commands) {
      const handler = handlers[name as CommandName] as CheckedHandler<C> | undefined;
      if (!handler) throw new Error(`sevd bug: no handler for ${schema.monitor} command ${name}`);
      this.table.set(name, { cmd, handler });
    }
    this.visitorOpts = { legacyEnumErrors: !atLeast(schema.version, '6.2.0') };
  }

  lookup(name: string): RCommand | undefined {
    return this.table.get(name)?.cmd;
  }

  /** Command names as query-commands lists them (QEMU prepends, so newest first). */
  commandNames(): string[] {
    return [...this.table.keys()].reverse();
  }

  introspection(): OutValue[] {
    this.schemaCache ??= introspect(this.schema);
    return this.schemaCache;
  }

  /** Validates, runs, shapes. Synchronous handlers stay synchronous (the fast path). */
  run(name: string, rawArgs: QDict, ctx: C): OutValue | Promise<OutValue> {
    const entry = this.table.get(name);
    if (!entry) throw new Error(`sevd bug: dispatch of unknown command ${name}`);
    const args = new InputVisitor(this.visitorOpts).visitArguments(entry.cmd.args, rawArgs);
    let result;
    try {
      result = entry.handler(args, ctx);
    } catch (e) {
      persistFailure(e);
    }
    if (result instanceof Promise) return result.then((r) => this.shape(entry.cmd, r), persistFailure);
    return this.shape(entry.cmd, result);
  }

  private shape(cmd: RCommand, r: HandlerResult): OutValue {
    if (!cmd.returns) return {};
    return shapeOutput(cmd.returns, r ?? undefined);
  }
}
