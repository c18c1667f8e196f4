/** Migration commands of a guest monitor (QEMU qapi/migration.json). */
import type { Handler, Handlers } from '../dispatch/dispatcher.js';
import type { SessionContext } from '../dispatch/common-commands.js';
import type { VmMigration } from './vm-migration.js';
import type { OutValue } from '../qmp/json/writer.js';

export interface MigrationContext extends SessionContext {
  migration: VmMigration;
}

export function migrationHandlers<C extends MigrationContext>(): Handlers<C> {
  return {
    'migrate-set-parameters': (args, { migration }) => {
      for (const [k, v] of Object.entries(args)) {
        // StrOrNull: a JSON null stores "".
        migration.state.parameters[k] = v === null ? '' : (v as string | number | boolean);
      }
    },
    'query-migrate-parameters': (_a, { migration }) => ({ ...migration.state.parameters }),
    'migrate-set-capabilities': (args, { migration }) => {
      migration.setCapabilities(args['capabilities']);
    },
    'query-migrate-capabilities': (_a, { migration, session }) => {
      const t = session.monitor.dispatcher.schema.resolve('MigrationCapability');
      const names = t.kind === 'enum' ? t.values : [];
      return names.map((capability: string) => ({ capability, state: migration.state.capabilities.get(capability) === true }));
    },
    migrate: (args, { migration, session }) => migration.migrate(args['uri'], session.access.origin),
    'migrate-incoming': (args, { migration, session }) => migration.startIncoming(args['uri'], true, session.access.origin),
    migrate_cancel: (_a, { migration }) => migration.cancel(),
    'query-migrate': (_a, { migration }) => migration.state.info() as OutValue,
  };
}
