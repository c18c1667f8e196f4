/**
 * Configuration: embedded defaults, overridden by a JSON file, overridden by flags.
 * Validated with ajv (compiled once); a bad value stops start-up with exit code 2 and
 * one line naming the file, the JSON path and what was expected.
 */
import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import { schema } from '../../schema/index.js';
import { compiledSchema } from '../dispatch/compiled-schema.js';
import { parseVersion } from '../dispatch/version.js';
import { toJsonSchema } from './json-schema.js';
import { DEFAULT_CONFIG, type SevdConfig } from './defaults.js';

export class ConfigError extends Error {
  readonly exitCode = 2;
}

export interface CliFlags {
  config?: string;
  runDir?: string;
  stateDir?: string;
  wsHost?: string;
  wsPort?: number;
  help?: boolean;
}

const FLAGS: Record<string, { key: keyof CliFlags; value: 'string' | 'port' | 'none'; help: string }> = {
  '--config': { key: 'config', value: 'string', help: 'JSON configuration file' },
  '--run-dir': { key: 'runDir', value: 'string', help: 'directory for the QMP sockets (default ./run)' },
  '--state-dir': { key: 'stateDir', value: 'string', help: 'directory for persistent platform state (default ./state)' },
  '--ws-host': { key: 'wsHost', value: 'string', help: 'WebSocket listen address (default 127.0.0.1)' },
  '--ws-port': { key: 'wsPort', value: 'port', help: 'WebSocket port (default 4445; 0 picks a free one)' },
  '--help': { key: 'help', value: 'none', help: 'print this help' },
};

export function usage(): string {
  const lines = Object.entries(FLAGS).map(([f, d]) => `  ${(f + (d.value === 'none' ? '' : ' ' + d.value.toUpperCase())).padEnd(24)}${d.help}`);
  return `usage: sevd [flags]\n\n${lines.join('\n')}\n`;
}

export function parseFlags(argv: string[]): CliFlags {
  const out: CliFlags = {};
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i]!;
    let inline: string | undefined;
    const eq = arg.indexOf('=');
    if (arg.startsWith('--') && eq > 0) {
      inline = arg.slice(eq + 1);
      arg = arg.slice(0, eq);
    }
    const def = FLAGS[arg];
    if (!def) throw new ConfigError(`sevd: unknown flag '${arg}' (see --help)`);
    if (def.value === 'none') {
      (out as Record<string, unknown>)[def.key] = true;
      continue;
    }
    const v = inline ?? argv[++i];
    if (v === undefined) throw new ConfigError(`sevd: flag ${arg} expects a value`);
    if (def.value === 'port') {
      const n = Number(v);
      if (!/^\d+$/.test(v) || n > 65535) throw new ConfigError(`sevd: flag ${arg}: expected a port number 0-65535, got '${v}'`);
      (out as Record<string, unknown>)[def.key] = n;
    } else {
      (out as Record<string, unknown>)[def.key] = v;
    }
  }
  return out;
}

function configJsonSchema(): Record<string, unknown> {
  const guestSpec = toJsonSchema(compiledSchema(schema, 'control', parseVersion('9.2.0')).resolve('GuestSpec'));
  const u = (max: number) => ({ type: 'integer', minimum: 0, maximum: max });
  const absDir = { type: 'string', minLength: 1 };
  const dirList = { type: 'array', items: absDir };
  const account = { anyOf: [{ type: 'null' }, { type: 'integer', minimum: 0 }, { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_.-]*$' }] };
  return {
    type: 'object',
    additionalProperties: false,
    properties: {
      runDir: { type: 'string', minLength: 1 },
      stateDir: { type: 'string', minLength: 1 },
      qemuVersion: { type: 'string', pattern: '^\\d+\\.\\d+\\.\\d+$' },
      socketMode: u(0o777),
      socketGroup: account,
      logLevel: { enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] },
      websocket: {
        anyOf: [
          { const: false },
          {
            type: 'object',
            additionalProperties: false,
            properties: {
              host: { type: 'string', minLength: 1 },
              port: u(65535),
              token: { type: ['string', 'null'], minLength: 1 },
              tokens: {
                type: 'array',
                items: {
                  type: 'object', additionalProperties: false, required: ['token', 'access'],
                  properties: { token: { type: 'string', minLength: 1 }, access: { enum: ['full', 'read-only'] } },
                },
              },
              allowedOrigins: { type: 'array', items: { type: 'string' } },
              tls: {
                anyOf: [
                  { type: 'null' },
                  { type: 'object', additionalProperties: false, required: ['cert', 'key'], properties: { cert: { type: 'string' }, key: { type: 'string' } } },
                ],
              },
            },
          },
        ],
      },
      platform: {
        type: 'object',
        additionalProperties: false,
        properties: {
          generation: { enum: ['naples', 'rome', 'milan', 'genoa', 'turin'] },
          apiMajor: u(255), apiMinor: u(255), build: u(255),
          cbitpos: u(63), reducedPhysBits: { type: 'integer', minimum: 1, maximum: 63 },
          maxGuests: { type: 'integer', minimum: 1, maximum: 65535 },
          minSevAsid: { anyOf: [{ type: 'null' }, { type: 'integer', minimum: 1, maximum: 65535 }] },
          seed: { anyOf: [{ type: 'null' }, { type: 'string', pattern: '^([0-9a-fA-F]{2})+$' }] },
        },
      },
      limits: {
        type: 'object',
        additionalProperties: false,
        properties: {
          maxPendingCommands: { type: 'integer', minimum: 1 },
          maxConsecutiveErrors: { type: 'integer', minimum: 0 },
          maxMessageBytes: { type: 'integer', minimum: 1024, maximum: 64 * 1024 * 1024 },
          maxConnections: { type: 'integer', minimum: 1 },
          maxConnectionsPerMonitor: { type: 'integer', minimum: 1 },
          negotiationTimeoutMs: { type: 'integer', minimum: 0 },
        },
      },
      paths: {
        type: 'object',
        additionalProperties: false,
        properties: {
          images: dirList, inputs: dirList,
          dumps: { anyOf: [{ type: 'null' }, absDir, dirList] },
          migration: { anyOf: [{ type: 'null' }, absDir, dirList] },
          confine: { enum: ['websocket', 'all', 'none'] },
        },
      },
      user: account, group: account,
      guests: { type: 'array', items: guestSpec },
      // Each FAULT is checked against the QMP schema's Fault union at start-up.
      faults: { type: 'array', items: { type: 'object' } },
    },
  };
}

let validator: ReturnType<Ajv['compile']> | undefined;

/** Ajv instancePath "/guests/0/name" → "$.guests[0].name". */
function jsonPath(instancePath: string, extra?: string): string {
  const parts = instancePath.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (extra) parts.push(extra);
  return '$' + parts.map((p) => (/^\d+$/.test(p) ? `[${p}]` : `.${p}`)).join('');
}

export function validateConfig(raw: unknown, source: string): SevdConfig {
  validator ??= new Ajv({ allErrors: false, strict: false }).compile(configJsonSchema());
  if (!validator(raw)) {
    const e = validator.errors![0]!;
    const extra = e.keyword === 'additionalProperties' ? String((e.params as { additionalProperty: string }).additionalProperty) : undefined;
    const what = e.keyword === 'additionalProperties' ? 'is not a known setting' : (e.message ?? 'is invalid');
    throw new ConfigError(`sevd: ${source}: ${jsonPath(e.instancePath, extra)}: ${what}`);
  }
  const r = raw as Partial<SevdConfig>;
  const ws = r.websocket === undefined ? DEFAULT_CONFIG.websocket : r.websocket;
  return {
    ...DEFAULT_CONFIG,
    ...r,
    websocket: ws === false ? false : { ...(DEFAULT_CONFIG.websocket as object), ...ws } as SevdConfig['websocket'],
    platform: { ...DEFAULT_CONFIG.platform, ...r.platform },
    limits: { ...DEFAULT_CONFIG.limits, ...r.limits },
    paths: { ...DEFAULT_CONFIG.paths, ...r.paths },
    guests: r.guests ?? DEFAULT_CONFIG.guests,
  };
}

/** Defaults ← file ← flags. */
export function loadConfig(flags: CliFlags): { config: SevdConfig; source: string } {
  let raw: Record<string, unknown> = {};
  let source = 'embedded default';
  if (flags.config) {
    source = flags.config;
    let text: string;
    try {
      text = readFileSync(flags.config, 'utf8');
    } catch (e) {
      throw new ConfigError(`sevd: ${flags.config}: cannot read: ${(e as Error).message}`);
    }
    try {
      raw = JSON.parse(text) as Record<string, unknown>;
    } catch (e) {
      throw new ConfigError(`sevd: ${flags.config}: $: expected a JSON document (${(e as Error).message})`);
    }
  }
  const config = validateConfig(raw, source);
  if (flags.runDir) config.runDir = flags.runDir;
  if (flags.stateDir) config.stateDir = flags.stateDir;
  if (config.websocket && flags.wsHost) config.websocket = { ...config.websocket, host: flags.wsHost };
  if (config.websocket && flags.wsPort !== undefined) config.websocket = { ...config.websocket, port: flags.wsPort };
  return { config, source };
}
