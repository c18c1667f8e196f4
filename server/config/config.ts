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
import { helpText, parseCommand, UsageError, type CommandDef } from '../../cli/args.js';

export class ConfigError extends Error {
  readonly exitCode = 2;
}

export interface CliFlags {
  config?: string;
  runDir?: string;
  stateDir?: string;
  wsHost?: string;
  wsPort?: number;
  logFormat?: 'json' | 'pretty';
  logLevel?: SevdConfig['logLevel'];
  help?: boolean;
  version?: boolean;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** sevd's command line: the one definition its parser and --help use. */
export const SEVD_COMMAND: CommandDef = {
  name: 'sevd',
  summary: 'A software AMD SEV host: an emulated AMD Secure Processor and SEV guests behind QEMU-compatible QMP monitors.\nFlags override the config file, which overrides the embedded defaults.',
  options: [
    { name: 'config', value: 'FILE', help: 'JSON configuration file (docs/configuration.md)' },
    { name: 'run-dir', value: 'DIR', help: 'directory for the QMP sockets (default ./run)' },
    { name: 'state-dir', value: 'DIR', help: 'directory for persistent platform state (default ./state)' },
    { name: 'ws-host', value: 'HOST', help: 'WebSocket/HTTP listen address (default 127.0.0.1)' },
    { name: 'ws-port', value: 'PORT', help: 'WebSocket/HTTP port (default 4445; 0 picks a free one)' },
    { name: 'log-format', value: 'json|pretty', help: 'log lines as JSON, or readable (default: pretty on a terminal, else JSON)' },
    { name: 'log-level', value: 'LEVEL', help: `log level: ${LOG_LEVELS.join(', ')} (default info)` },
    { name: 'version', help: 'print the version and exit' },
  ],
  example: 'sevd --config config/development.json --ws-port 4445',
};

/** `sevd platform export`. */
export const PLATFORM_EXPORT_COMMAND: CommandDef = {
  name: 'sevd platform export',
  summary: "Write the platform's certificates under the names guest-owner tools use (ark ask cek oca pek pdh .cert, ask_ark.cert).",
  options: [
    { name: 'out', value: 'DIR', help: 'where to write the certificates' },
    { name: 'config', value: 'FILE', help: 'JSON configuration file (its state directory is read)' },
    { name: 'state-dir', value: 'DIR', help: 'the state directory to read' },
  ],
  example: 'sevd platform export --out certs/',
};

export function usage(): string {
  return helpText(SEVD_COMMAND, 'commands:\n  platform export     write the platform certificates (see sevd platform export --help)');
}

export function parseFlags(argv: string[], def: CommandDef = SEVD_COMMAND): CliFlags {
  let values;
  try {
    ({ values } = parseCommand(def, argv));
  } catch (e) {
    if (e instanceof UsageError) throw new ConfigError(e.message);
    throw e;
  }
  const v = (k: string) => (typeof values[k] === 'string' ? (values[k] as string) : undefined);
  const out: CliFlags = {};
  if (v('config') !== undefined) out.config = v('config')!;
  if (v('run-dir') !== undefined) out.runDir = v('run-dir')!;
  if (v('state-dir') !== undefined) out.stateDir = v('state-dir')!;
  if (v('ws-host') !== undefined) out.wsHost = v('ws-host')!;
  const port = v('ws-port');
  if (port !== undefined) {
    const n = Number(port);
    if (!/^\d+$/.test(port) || n > 65535) throw new ConfigError(`sevd: flag --ws-port: expected a port number 0-65535, got '${port}'`);
    out.wsPort = n;
  }
  const fmt = v('log-format');
  if (fmt !== undefined) {
    if (fmt !== 'json' && fmt !== 'pretty') throw new ConfigError(`sevd: flag --log-format: expected json or pretty, got '${fmt}'`);
    out.logFormat = fmt;
  }
  const level = v('log-level');
  if (level !== undefined) {
    if (!(LOG_LEVELS as readonly string[]).includes(level)) throw new ConfigError(`sevd: flag --log-level: expected one of ${LOG_LEVELS.join(', ')}, got '${level}'`);
    out.logLevel = level as CliFlags['logLevel'];
  }
  if (values['help']) out.help = true;
  if (values['version']) out.version = true;
  return out;
}

function configJsonSchema(): Record<string, unknown> {
  const guestSpec = toJsonSchema(compiledSchema(schema, 'control', parseVersion('9.2.0')).resolve('GuestSpec'));
  const u = (max: number) => ({ type: 'integer', minimum: 0, maximum: max });
  const absDir = { type: 'string', minLength: 1 };
  const dirList = { type: 'array', items: absDir };
  const tcb = {
    type: 'object', additionalProperties: false, required: ['bootloader', 'tee', 'snp', 'microcode'],
    properties: { bootloader: u(255), tee: u(255), snp: u(255), microcode: u(255), fmc: { anyOf: [{ type: 'null' }, u(255)] } },
  };
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
              allowedHosts: { type: 'array', items: { type: 'string', minLength: 1 } },
              metricsToken: { type: ['string', 'null'], minLength: 1 },
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
          snp: {
            type: 'object',
            additionalProperties: false,
            properties: {
              tcb: tcb, reportedTcb: { anyOf: [{ type: 'null' }, tcb] },
              maskChipId: { type: 'boolean' }, maskChipKey: { type: 'boolean' },
            },
          },
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
          kdsVcekCache: { type: 'integer', minimum: 1, maximum: 1000000 },
          kdsNewVcekPerSecond: { type: 'number', exclusiveMinimum: 0 },
          kdsNewVcekBurst: { type: 'integer', minimum: 1 },
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
      launch: {
        type: 'object',
        additionalProperties: false,
        properties: { group: account, mode: { anyOf: [u(0o777), { type: 'string', pattern: '^0?[0-7]{3}$' }] } },
      },
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
    platform: { ...DEFAULT_CONFIG.platform, ...r.platform, snp: { ...DEFAULT_CONFIG.platform.snp, ...r.platform?.snp } },
    limits: { ...DEFAULT_CONFIG.limits, ...r.limits },
    paths: { ...DEFAULT_CONFIG.paths, ...r.paths },
    launch: { ...DEFAULT_CONFIG.launch, ...r.launch },
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
  if (flags.logLevel) config.logLevel = flags.logLevel;
  return { config, source };
}
