/**
 * The WebSocket listener (docs/interface.md §4, §6): fastify serves HTTP, `ws` takes the
 * upgrade. `/qmp` is the control monitor, `/qmp/<name>` a guest monitor, `/qga/<name>` a
 * guest agent. Offering subprotocol `binary` gets QEMU's mode (binary frames carrying the
 * raw byte stream); otherwise one JSON message per text frame each way.
 *
 * What a browser page on another site could make of this listener is closed here: a
 * foreign `Origin` is refused, and so is a `Host` that is not one of ours (DNS rebinding:
 * the attacker's name resolving to 127.0.0.1 makes the browser send `Host: attacker:PORT`
 * with a matching `Origin`). Nothing a client sends in the request line may throw.
 */
import type { IncomingMessage } from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { timingSafeEqual, createHash } from 'node:crypto';
import { isIP } from 'node:net';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Monitor } from '../qmp/monitor.js';
import { QmpSession } from '../qmp/session.js';
import type { ConnectionBudget } from './connection-budget.js';
import type { Metrics } from '../observability/metrics.js';

export interface WebSocketOptions {
  host: string;
  port: number;
  token: string | null;
  /** Further tokens, each full or read-only (docs/interface.md §14). */
  tokens?: { token: string; access: 'full' | 'read-only' }[];
  allowedOrigins: string[];
  /**
   * Names a client may reach the listener by (the `Host` header's name, port aside), beside
   * the listen address itself and `localhost`; a wildcard listen address admits every IP
   * literal (a rebinding attack always arrives with a DNS name).
   */
  allowedHosts?: string[];
  /** A token for `/metrics` alone (a scraper needs no monitor); any monitor token works too. */
  metricsToken?: string | null;
  /** Finds the monitor for a path, or undefined (404). */
  route(path: string): { monitor: Monitor<any>; agent: boolean } | undefined;
  logger?: FastifyInstance['log'] | false;
  budget?: ConnectionBudget;
  /** PEM certificate and key: the listener speaks HTTPS/WSS. */
  tls?: { cert: Buffer; key: Buffer } | null;
  /** The daemon's metrics: GET /metrics renders them; refusals count into them. */
  metrics?: Metrics;
  /** The operator view's static files (web/), served at / (docs/interface.md §12). */
  webRoot?: string | null;
  /** More HTTP routes (the KDS endpoint). */
  routes?: (app: FastifyInstance) => void;
}

/** The operator view's files: fixed names, read once; nothing else under web/ is served. */
const WEB_FILES: Record<string, [string, string]> = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/app.js': ['app.js', 'text/javascript; charset=utf-8'],
  '/app.css': ['app.css', 'text/css; charset=utf-8'],
};

const BINARY_ONLY = 'only binary, close, ping, and pong frames are supported';

function tokenMatches(expected: string, given: string): boolean {
  // Hash both sides so the comparison is constant-time whatever the lengths.
  const a = createHash('sha256').update(expected).digest();
  const b = createHash('sha256').update(given).digest();
  return timingSafeEqual(a, b);
}

/** The token of an `Authorization: Bearer <t>` header, if any. */
function bearer(headers: IncomingMessage['headers']): string | undefined {
  const auth = headers['authorization'];
  return typeof auth === 'string' && auth.startsWith('Bearer ') ? auth.slice(7) : undefined;
}

/** Whether `given` matches one of `tokens`, compared with each so the time tells nothing. */
function presented(given: unknown, tokens: string[]): boolean {
  let ok = false;
  if (typeof given === 'string') for (const t of tokens) ok = tokenMatches(t, given) || ok;
  return ok;
}

function reject(socket: Duplex, status: number, text: string): void {
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

export class WebSocketListener {
  readonly app: FastifyInstance;
  private readonly wss = new WebSocketServer({
    noServer: true,
    maxPayload: 64 * 1024 * 1024,
    // Never echo the token subprotocol: pick the client's real protocol.
    handleProtocols: (protocols) => {
      if (protocols.has('binary')) return 'binary';
      for (const p of protocols) if (!p.startsWith('token.')) return p;
      return false;
    },
  });
  private readonly clients = new Set<WebSocket>();
  /** Every accepted token; empty: no token is needed and every client has full access. */
  private readonly credentials: { token: string; readOnly: boolean }[];
  private readonly hostNames: Set<string>;

  constructor(private readonly opts: WebSocketOptions) {
    this.credentials = [
      ...(opts.token !== null ? [{ token: opts.token, readOnly: false }] : []),
      ...(opts.tokens ?? []).map((t) => ({ token: t.token, readOnly: t.access === 'read-only' })),
    ];
    this.hostNames = new Set([opts.host, 'localhost', ...(opts.allowedHosts ?? [])].map((h) => h.toLowerCase().replace(/^\[(.*)\]$/, '$1')));
    this.app = opts.tls ? (Fastify({ logger: false, routerOptions: { maxParamLength: 256 }, https: { cert: opts.tls.cert, key: opts.tls.key } }) as unknown as FastifyInstance) : Fastify({ logger: false, routerOptions: { maxParamLength: 256 } }); // a KDS hwID is 128 hex digits
    // The KDS paths and /healthz are public data for anyone by any name; the rest is ours.
    this.app.addHook('onRequest', async (req, reply) => {
      if (req.url === '/healthz' || req.url.startsWith('/vcek/')) return;
      if (!this.hostAllowed(req.headers.host)) {
        this.opts.metrics?.refusals.inc({ reason: 'host' });
        return reply.code(403).type('text/plain').send('403 Forbidden: unknown Host\n');
      }
    });
    this.app.get('/healthz', async () => ({ status: 'ok' }));
    if (opts.metrics) {
      const metrics = opts.metrics;
      this.app.get('/metrics', async (req, reply) => {
        if (!this.metricsAllowed(req)) return reply.code(401).type('text/plain').send('401 Unauthorized\n');
        return reply.type('text/plain; version=0.0.4').send(metrics.render());
      });
    }
    if (opts.webRoot) this.serveWeb(opts.webRoot);
    opts.routes?.(this.app);
    this.app.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.upgrade(req, socket, head));
  }

  /**
   * The operator view. `/` needs a token when tokens are configured (`?token=` from a
   * browser, or a Bearer header), like the monitors it talks to; the page then hands the
   * token to its WebSockets as the subprotocol. The script and style are public.
   */
  private serveWeb(root: string): void {
    const security = {
      'content-security-policy': "default-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
      'x-content-type-options': 'nosniff',
      // The token may be in the page's URL: never pass it on.
      'referrer-policy': 'no-referrer',
    };
    for (const [route, [file, type]] of Object.entries(WEB_FILES)) {
      const body = readFileSync(join(root, file));
      this.app.get(route, async (req, reply) => {
        if (route === '/' && this.credentials.length > 0) {
          const given = bearer(req.headers) ?? (req.query as Record<string, unknown>)['token'];
          if (!presented(given, this.credentials.map((c) => c.token))) return reply.code(401).headers(security).type('text/plain').send('401 Unauthorized: open /?token=<token>\n');
        }
        return reply.headers(security).type(type).send(body);
      });
    }
  }

  /** The `Host` header's name (port aside) is one this listener answers to. */
  private hostAllowed(header: string | undefined): boolean {
    if (header === undefined) return false;
    const m = /^(?:\[([^\]]+)\]|([^:]+))(?::\d+)?$/.exec(header.trim());
    if (!m) return false;
    const name = (m[1] ?? m[2]!).toLowerCase();
    if (this.hostNames.has(name)) return true;
    const wildcard = this.opts.host === '0.0.0.0' || this.opts.host === '::';
    return wildcard && isIP(name) !== 0;
  }

  /** /metrics: open when no token is configured; else any monitor token or the metrics token. */
  private metricsAllowed(req: FastifyRequest): boolean {
    const tokens = [...this.credentials.map((c) => c.token), ...(this.opts.metricsToken ? [this.opts.metricsToken] : [])];
    return tokens.length === 0 || presented(bearer(req.headers), tokens);
  }

  async listen(): Promise<string> {
    await this.app.listen({ host: this.opts.host, port: this.opts.port });
    const addr = this.app.server.address();
    const port = typeof addr === 'object' && addr ? addr.port : this.opts.port;
    const host = this.opts.host.includes(':') ? `[${this.opts.host}]` : this.opts.host;
    return `${this.opts.tls ? 'wss' : 'ws'}://${host}:${port}`;
  }

  get port(): number {
    const addr = this.app.server.address();
    return typeof addr === 'object' && addr ? addr.port : this.opts.port;
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => undefined);
    // A malformed path (bad percent-encoding, an unparsable URL) is the client's error.
    let path: string;
    try {
      path = decodeURIComponent(new URL(req.url ?? '/', 'http://localhost').pathname);
    } catch {
      return reject(socket, 400, 'Bad Request');
    }
    if (!this.hostAllowed(req.headers.host)) {
      this.opts.metrics?.refusals.inc({ reason: 'host' });
      return reject(socket, 403, 'Forbidden');
    }
    const offered = (req.headers['sec-websocket-protocol'] ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    let readOnly = false;
    if (this.credentials.length > 0) {
      const given = bearer(req.headers) ?? offered.find((p) => p.startsWith('token.'))?.slice(6);
      // Compared with every token, so the time taken does not tell which one matched.
      let match: { readOnly: boolean } | undefined;
      if (given !== undefined) for (const c of this.credentials) if (tokenMatches(c.token, given)) match ??= c;
      if (!match) return reject(socket, 401, 'Unauthorized');
      readOnly = match.readOnly;
    }
    const origin = req.headers['origin'];
    if (origin !== undefined && !this.originAllowed(origin, req)) return reject(socket, 403, 'Forbidden');
    const target = this.opts.route(path);
    if (!target) return reject(socket, 404, 'Not Found');
    // Whoever talks to the guest agent writes guest memory: never with a read-only token.
    if (readOnly && target.agent) {
      this.opts.metrics?.refusals.inc({ reason: 'read-only-agent' });
      return reject(socket, 403, 'Forbidden');
    }
    const binary = offered.includes('binary');
    const release = this.opts.budget?.acquire('websocket', target.monitor.sessions.size) ?? (() => undefined);
    if (typeof release === 'string') return reject(socket, 503, 'Service Unavailable');
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      ws.once('close', release);
      this.attach(ws, target.monitor, target.agent, binary, readOnly);
    });
  }

  private originAllowed(origin: string, req: IncomingMessage): boolean {
    if (this.opts.allowedOrigins.includes(origin)) return true;
    const host = req.headers['host'];
    return host !== undefined && origin === `${this.opts.tls ? 'https' : 'http'}://${host}`;
  }

  private attach(ws: WebSocket, monitor: Monitor<any>, agent: boolean, binary: boolean, readOnly: boolean): void {
    this.clients.add(ws);
    const session = new QmpSession(
      monitor,
      {
        write: (data) => {
          if (ws.readyState !== ws.OPEN) return;
          if (binary) ws.send(Buffer.from(data, 'latin1'), { binary: true });
          // Text mode: one message per frame, without the CRLF.
          else for (const line of data.split('\r\n')) if (line) ws.send(line);
        },
        close: () => ws.close(1000),
        pause: () => (ws as unknown as { _socket?: Duplex })._socket?.pause(),
        resume: () => (ws as unknown as { _socket?: Duplex })._socket?.resume(),
      },
      { agent, access: { origin: 'websocket', readOnly } },
    );
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (binary) {
        if (!isBinary) return ws.close(1003, BINARY_ONLY);
        session.receive(data);
      } else {
        session.receiveMessage(data);
      }
    });
    ws.on('error', () => undefined);
    ws.on('close', () => {
      session.detach();
      this.clients.delete(ws);
    });
  }

  get connections(): number {
    return this.clients.size;
  }

  async close(): Promise<void> {
    for (const ws of this.clients) ws.terminate();
    await this.app.close();
  }
}
