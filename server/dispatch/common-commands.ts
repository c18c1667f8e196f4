/** Handlers every QMP monitor shares: negotiation, version and introspection. */
import type { Handler, Handlers } from './dispatcher.js';
import type { QmpSession } from '../qmp/session.js';

export interface SessionContext {
  session: QmpSession;
}

export function commonHandlers<C extends SessionContext>(): Handlers<C> {
  return {
    qmp_capabilities: (args, ctx) => {
      ctx.session.negotiate(args['enable'] ?? []);
    },
    'query-version': (_a, ctx) => ctx.session.monitor.versionInfo(),
    'query-commands': (_a, ctx) => ctx.session.monitor.dispatcher.commandNames().map((name: string) => ({ name })),
    'query-qmp-schema': (_a, ctx) => ctx.session.monitor.dispatcher.introspection(),
  };
}
