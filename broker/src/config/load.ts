import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import { load as parseYaml } from 'js-yaml';
import { brokerConfigSchema } from './schema.js';
import { BROKER_SETTINGS, envName, type Setting } from './settings.js';
import { ConfigError, type ConfigIssue } from './errors.js';
import type { BrokerConfig } from './types.js';

type Doc = Record<string, unknown>;

export interface ConfigSources {
  /** Path of the YAML config file, if any. */
  file?: string;
  /** Flag values by flag name (without `--`), as strings or booleans from the argument parser. */
  flags?: Record<string, string | boolean | undefined>;
  env?: NodeJS.ProcessEnv;
}

const DEFAULT_MQTT_LISTENER = { name: 'mqtt', protocol: 'mqtt', host: '127.0.0.1', port: 1883 };

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true, strictRequired: false, allowUnionTypes: true });
const validateSchema = ajv.compile(brokerConfigSchema);

/** Builds the effective configuration: embedded defaults < config file < MERIDIAN_* env < flags. */
export function loadBrokerConfig(sources: ConfigSources): BrokerConfig {
  const doc = sources.file ? readConfigFile(sources.file) : {};
  const listeners = Array.isArray(doc.listeners) ? doc.listeners : [];
  if (!listeners.some((l) => isRecord(l) && l.protocol === 'mqtt')) listeners.unshift({ ...DEFAULT_MQTT_LISTENER });
  doc.listeners = listeners;

  const issues: ConfigIssue[] = [];
  const env = sources.env ?? {};
  for (const setting of BROKER_SETTINGS) {
    const name = envName(setting.flag);
    if (env[name] !== undefined && env[name] !== '') applySetting(doc, setting, env[name], name, issues);
  }
  for (const setting of BROKER_SETTINGS) {
    const value = sources.flags?.[setting.flag];
    if (value !== undefined) applySetting(doc, setting, value, `--${setting.flag}`, issues);
  }
  if (issues.length) throw new ConfigError('flags and environment', issues);

  if (!validateSchema(doc)) throw new ConfigError(sources.file ?? 'defaults', (validateSchema.errors ?? []).map(toIssue));
  const config = doc as unknown as BrokerConfig;
  deriveDefaults(config);
  const semantic = checkSemantics(config);
  if (semantic.length) throw new ConfigError(sources.file ?? 'defaults', semantic);
  return config;
}

function readConfigFile(file: string): Doc {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, [{ path: '(file)', message: `cannot read: ${(err as Error).message}` }]);
  }
  let parsed: unknown;
  try {
    parsed = parseYaml(text, { filename: file });
  } catch (err) {
    throw new ConfigError(file, [{ path: '(yaml)', message: (err as Error).message }]);
  }
  if (parsed === undefined || parsed === null) return {};
  if (!isRecord(parsed)) throw new ConfigError(file, [{ path: '(root)', message: 'must be a mapping' }]);
  return parsed;
}

function applySetting(doc: Doc, setting: Setting, raw: string | boolean, origin: string, issues: ConfigIssue[]): void {
  const value = coerce(setting, raw);
  if (value === undefined) {
    issues.push({ path: origin, message: `expected ${expectedValue(setting)}, got '${String(raw)}'` });
    return;
  }
  const keys = setting.path.split('.');
  let target: Doc;
  if (keys[0] === 'listeners') {
    const listeners = doc.listeners as unknown[];
    target = listeners.find((l): l is Doc => isRecord(l) && l.protocol === keys[1]) as Doc;
    keys.splice(0, 2);
  } else {
    target = doc;
    while (keys.length > 1) {
      const key = keys.shift() as string;
      if (!isRecord(target[key])) target[key] = {};
      target = target[key] as Doc;
    }
  }
  target[keys[0] as string] = value;
}

function coerce(setting: Setting, raw: string | boolean): string | number | boolean | string[] | undefined {
  if (setting.type === 'boolean') {
    if (typeof raw === 'boolean') return raw;
    if (/^(true|1|yes)$/i.test(raw)) return true;
    if (/^(false|0|no)$/i.test(raw)) return false;
    return undefined;
  }
  if (typeof raw === 'boolean') return undefined;
  if (setting.type === 'integer') return /^-?\d+$/.test(raw.trim()) ? Number(raw) : undefined;
  if (setting.type === 'list') return raw.split(',').map((item) => item.trim()).filter(Boolean);
  if (setting.flag === 'discovery') return /^dns:.+/.test(raw) ? raw.slice('dns:'.length) : undefined;
  return raw;
}

function expectedValue(setting: Setting): string {
  if (setting.flag === 'discovery') return 'dns:<name>';
  return setting.type === 'integer' ? 'an integer' : setting.type;
}

function deriveDefaults(config: BrokerConfig): void {
  config.node.name ??= hostname().split('.')[0] || 'meridian';
  config.node.dataDir ??= path.join('data', config.node.name);
  for (const tenant of config.auth.tenants) tenant.mountpoint ??= `${tenant.name}/`;
}

function checkSemantics(config: BrokerConfig): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const seen = new Map<string, number>();
  config.listeners.forEach((l, i) => {
    const where = `listeners[${i}]`;
    if (seen.has(l.name)) issues.push({ path: `${where}.name`, message: `duplicates listeners[${seen.get(l.name)}].name '${l.name}'` });
    seen.set(l.name, i);
    if (l.port !== 0 && config.listeners.some((o, j) => j < i && o.port === l.port && o.host === l.host)) {
      issues.push({ path: `${where}.port`, message: `port ${l.port} on ${l.host} is already used by another listener` });
    }
    if (l.tls?.requireClientCert && !l.tls.caFile) issues.push({ path: `${where}.tls.caFile`, message: 'required when requireClientCert is true' });
  });
  issues.push(...clusterIssues(config));
  const tenants = config.auth.tenants;
  tenants.forEach((t, i) => {
    tenants.slice(0, i).forEach((o, j) => {
      if (o.name === t.name) issues.push({ path: `auth.tenants[${i}].name`, message: `duplicates auth.tenants[${j}].name` });
      else if (t.mountpoint.startsWith(o.mountpoint) || o.mountpoint.startsWith(t.mountpoint)) {
        issues.push({ path: `auth.tenants[${i}].mountpoint`, message: `'${t.mountpoint}' overlaps auth.tenants[${j}].mountpoint '${o.mountpoint}': one tenant could reach into the other's topics` });
      }
    });
    if (/[+#\u0000]/.test(t.mountpoint) || t.mountpoint.startsWith('$')) {
      issues.push({ path: `auth.tenants[${i}].mountpoint`, message: 'must not contain wildcards or NUL, nor start with $' });
    }
  });
  return issues;
}

/** Clustering is on when the node has a cluster port, seeds or DNS discovery. */
export function clusterEnabled(config: BrokerConfig): boolean {
  const { cluster } = config;
  return cluster.port !== undefined || cluster.seeds.length > 0 || cluster.discoveryDns !== undefined;
}

function clusterIssues(config: BrokerConfig): ConfigIssue[] {
  const { cluster } = config;
  const issues: ConfigIssue[] = [];
  if (cluster.role === 'replicant' && cluster.seeds.length === 0 && !cluster.discoveryDns) {
    issues.push({ path: 'cluster.seeds', message: 'a replicant needs seeds or DNS discovery to find the cores' });
  }
  if (clusterEnabled(config) && !cluster.secretFile) {
    issues.push({ path: 'cluster.secretFile', message: 'required when clustering is enabled (nodes authenticate each other with it)' });
  }
  return issues;
}

function toIssue(error: ErrorObject): ConfigIssue {
  const where = error.instancePath.replace(/^\//, '').split('/').filter(Boolean)
    .map((seg) => (/^\d+$/.test(seg) ? `[${seg}]` : `.${seg}`)).join('').replace(/^\./, '') || '(root)';
  if (error.keyword === 'additionalProperties') {
    return { path: where === '(root)' ? String(error.params.additionalProperty) : `${where}.${String(error.params.additionalProperty)}`, message: 'unknown key' };
  }
  if (error.keyword === 'required') return { path: where, message: `missing required key '${String(error.params.missingProperty)}'` };
  if (error.keyword === 'enum') return { path: where, message: `must be one of ${(error.params.allowedValues as unknown[]).join(', ')}` };
  return { path: where, message: error.message ?? error.keyword };
}

function isRecord(value: unknown): value is Doc {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
