import { parseArgs } from 'node:util';
import type {
  BenchCommandName,
  BenchInvocation,
  ConnectionOptions,
  ConnOptions,
  Endpoint,
  ProtocolVersion,
  PubOptions,
  QoS,
  SubOptions,
} from './options.js';
import { HEADER_BYTES } from './payload.js';
import { topicFilterProblem, topicNameProblem } from './template.js';

/** A problem with the command line; the CLI prints it with the help hint and exits 2. */
export class BenchUsageError extends Error {
  override name = 'BenchUsageError';
}

export const BENCH_HELP = `Usage: meridian bench <conn|sub|pub> [options]

Load-test an MQTT broker (Meridian, mosquitto, any MQTT 3.1.1/5 broker) in the spirit of \`mqttx bench\`.
Every run is bounded in time; the report goes to stdout as text, or as one JSON document with --json.
Exit codes: 0 done, 1 connection/subscription failure or a lost connection, 2 bad command line.

Commands:
  conn   open --count connections, report connect times, hold them --hold seconds, disconnect.
  sub    open --count subscribers on --topic, report SUBACK times, then receive for --duration seconds
         and report messages/s and end-to-end latency of messages published by \`meridian bench pub\`.
  pub    open --count publishers on --topic (and --subscribers subscribers on --sub-topic in the same
         process), publish for --duration seconds, report messages/s and end-to-end latency percentiles.

Topic templates: %i is the 1-based client index, %c the client id, %% a literal %.
  e.g. --topic 'bench/%i' (one topic per client), --topic 't/bench/+/%i/sub/+/#' (wildcard filter per client).

Connection options (all commands):
  --host <host>              broker host (default localhost)
  --port <port>              broker MQTT port (default 1883)
  --hosts <host:port,...>    several brokers, e.g. the nodes of a cluster: client i connects to the
                             ((i - 1) mod n)-th of the n addresses (round-robin); replaces --host and --port
  --username <name>          MQTT username
  --password <secret>        MQTT password
  --count <n>                clients to open: connections, subscribers or publishers
                             (default 1000 for conn and sub, 1 for pub)
  --interval <ms>            milliseconds between the starts of two connection attempts (default 10)
  --concurrency <n>          most connection attempts awaiting CONNACK at once (default 100)
  --client-id-prefix <p>     client ids are <p><role>_<index> (default mb<pid>_, unique per process)
  --clean <true|false>       clean session flag (default true)
  --keepalive <s>            MQTT keepalive in seconds (default 60)
  --connect-timeout <s>      seconds to wait for one CONNACK before failing the run (default 10)
  --protocol-version <4|5>   MQTT 3.1.1 (4, default) or MQTT 5 (5)
  --json                     print the report as JSON
  --help                     print this help

conn options:
  --hold <s>                 seconds to keep all connections open once up (default 0)
  --ready-file <path>        write this file once every client is connected (for scripts measuring the broker)

sub options:
  --topic <template>         topic filter template, wildcards allowed (default bench/%i); repeat the flag to
                             give each client several subscriptions (all in one SUBSCRIBE)
  --qos <0|1|2>              subscription QoS (default 0)
  --duration <s>             seconds to receive after the last SUBACK; 0 = exit once subscribed (default 10)
  --messages <n>             stop early after n messages received in total; 0 = no limit (default 0)
  --ready-file <path>        write this file once every client is subscribed: JSON with the run's start and
                             the last SUBACK as epoch milliseconds (startedAtEpochMs, subscribedAtEpochMs)

pub options:
  --topic <template>         topic template, no wildcards (default bench/%i)
  --qos <0|1|2>              publish QoS (default 0)
  --payload-size <bytes>     payload size, at least ${HEADER_BYTES} (the latency header) (default 256)
  --rate <n>                 messages per second per publisher; 0 = as fast as flow control allows (default 0)
  --duration <s>             seconds to publish, the upper bound of every run (default 10)
  --messages <n>             messages per publisher; stops before --duration when reached; 0 = no limit (default 0)
  --inflight <n>             most unacknowledged QoS 1/2 messages per publisher, lowered to the broker's
                             Receive Maximum under MQTT 5; for QoS 0 the messages written per event-loop turn
                             before yielding (default 20, mosquitto's max_inflight_messages: over MQTT 3.1.1
                             mosquitto 2.0.11 was seen to drop QoS 1/2 publishes beyond it)
  --subscribers <n>          also open n subscribers in this process and measure end-to-end latency (default 0)
  --e2e-window <n>           with --subscribers: most messages per publisher published but not yet received
                             by the matching subscribers; keeps broker queues bounded so max-rate runs measure
                             sustained end-to-end throughput without overflowing them; 0 = no limit (default 0)
  --sub-topic <template>     subscribers' topic filter template (default: the --topic template, so
                             publisher i pairs with subscriber i)
  --sub-qos <0|1|2>          subscribers' QoS (default: --qos)
  --sub-hosts <host:port,...>
                             brokers the subscribers connect to, round-robin like --hosts (default: the
                             publishers' brokers), e.g. publishers on one cluster node, subscribers on another
  --publish-delay <s>        with --subscribers: seconds between the last SUBACK and the publishers' connect
                             (default 0); in a cluster a route reaches the other nodes a few ms after its
                             SUBACK, and messages published there before it arrives are not forwarded
  --drain-timeout <s>        seconds to wait after publishing for outstanding acks and deliveries (default 5)
  --warmup <s>               with --subscribers: messages published in the first s seconds of --duration are
                             counted (received, missing) but left out of the latency figures (default 0): the
                             load generator's own warm-up (a fresh Node process) shows in them for any broker
`;

const connectionFlags = {
  // No defaults for host and port: connectionOptions() applies them, so it can tell whether they were given.
  host: { type: 'string' },
  port: { type: 'string' },
  hosts: { type: 'string' },
  username: { type: 'string' },
  password: { type: 'string' },
  count: { type: 'string' },
  interval: { type: 'string', default: '10' },
  concurrency: { type: 'string', default: '100' },
  'client-id-prefix': { type: 'string' },
  clean: { type: 'string', default: 'true' },
  keepalive: { type: 'string', default: '60' },
  'connect-timeout': { type: 'string', default: '10' },
  'protocol-version': { type: 'string', default: '4' },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', default: false },
} as const;

const connFlags = {
  ...connectionFlags,
  hold: { type: 'string', default: '0' },
  'ready-file': { type: 'string' },
} as const;

const subFlags = {
  ...connectionFlags,
  topic: { type: 'string', multiple: true },
  qos: { type: 'string', default: '0' },
  duration: { type: 'string', default: '10' },
  messages: { type: 'string', default: '0' },
  'ready-file': { type: 'string' },
} as const;

const pubFlags = {
  ...connectionFlags,
  topic: { type: 'string', default: 'bench/%i' },
  qos: { type: 'string', default: '0' },
  'payload-size': { type: 'string', default: '256' },
  rate: { type: 'string', default: '0' },
  duration: { type: 'string', default: '10' },
  messages: { type: 'string', default: '0' },
  inflight: { type: 'string', default: '20' },
  subscribers: { type: 'string', default: '0' },
  'e2e-window': { type: 'string', default: '0' },
  'sub-topic': { type: 'string' },
  'sub-qos': { type: 'string' },
  'sub-hosts': { type: 'string' },
  'drain-timeout': { type: 'string', default: '5' },
  'publish-delay': { type: 'string', default: '0' },
  warmup: { type: 'string', default: '0' },
} as const;

type ConnectionValues = { [K in keyof typeof connectionFlags]?: FlagValue };

/** Parses the arguments after `meridian bench`; undefined means help was asked for. */
export function parseBenchArgs(argv: readonly string[]): BenchInvocation | undefined {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') return undefined;
  if (!isCommandName(command)) throw new BenchUsageError(`unknown bench command "${command}" (expected conn, sub or pub)`);
  if (rest.includes('--help') || rest.includes('-h')) return undefined;
  switch (command) {
    case 'conn': {
      const values = parseFlags(rest, connFlags);
      return { command, options: connOptions(values), json: values.json === true };
    }
    case 'sub': {
      const values = parseFlags(rest, subFlags);
      return { command, options: subOptions(values), json: values.json === true };
    }
    case 'pub': {
      const values = parseFlags(rest, pubFlags);
      return { command, options: pubOptions(values), json: values.json === true };
    }
  }
}

function isCommandName(value: string): value is BenchCommandName {
  return value === 'conn' || value === 'sub' || value === 'pub';
}

type FlagSpec = Record<string, { type: 'string' | 'boolean'; multiple?: boolean; default?: string | boolean }>;
type FlagValue = string | boolean | string[] | undefined;
type FlagValues<T extends FlagSpec> = { [K in keyof T]?: FlagValue };

function parseFlags<T extends FlagSpec>(args: string[], flags: T): FlagValues<T> {
  try {
    return parseArgs({ args, options: flags, strict: true, allowPositionals: false }).values as FlagValues<T>;
  } catch (error) {
    throw new BenchUsageError(error instanceof Error ? error.message : String(error));
  }
}

function connOptions(values: FlagValues<typeof connFlags>): ConnOptions {
  return {
    ...connectionOptions(values, 1000),
    holdS: numberFlag(values, 'hold', { min: 0 }),
    ...readyFile(values['ready-file']),
  };
}

function subOptions(values: FlagValues<typeof subFlags>): SubOptions {
  const topics = Array.isArray(values.topic) ? values.topic : ['bench/%i'];
  for (const topic of topics) checkTopic('--topic', topic, topicFilterProblem);
  return {
    ...connectionOptions(values, 1000),
    topics,
    qos: qosFlag(values, 'qos'),
    durationS: numberFlag(values, 'duration', { min: 0 }),
    messages: integerFlag(values, 'messages', { min: 0 }),
    ...readyFile(values['ready-file']),
  };
}

function pubOptions(values: FlagValues<typeof pubFlags>): PubOptions {
  const topic = stringFlag(values, 'topic');
  checkTopic('--topic', topic, topicNameProblem);
  const subTopic = typeof values['sub-topic'] === 'string' ? values['sub-topic'] : topic;
  checkTopic('--sub-topic', subTopic, topicFilterProblem);
  const qos = qosFlag(values, 'qos');
  const durationS = numberFlag(values, 'duration', { min: 0 });
  if (durationS === 0) throw new BenchUsageError('--duration must be greater than 0: it bounds every pub run');
  const connection = connectionOptions(values, 1);
  const subHosts = values['sub-hosts'];
  return {
    ...connection,
    topic,
    qos,
    payloadSize: integerFlag(values, 'payload-size', { min: HEADER_BYTES, max: 256 * 1024 * 1024 }),
    rate: numberFlag(values, 'rate', { min: 0 }),
    durationS,
    messages: integerFlag(values, 'messages', { min: 0 }),
    inflight: integerFlag(values, 'inflight', { min: 1, max: 65535 }),
    subscribers: integerFlag(values, 'subscribers', { min: 0 }),
    e2eWindow: integerFlag(values, 'e2e-window', { min: 0 }),
    subTopic,
    subQos: values['sub-qos'] === undefined ? qos : qosFlag(values, 'sub-qos'),
    subHosts: typeof subHosts === 'string' ? parseHostList('--sub-hosts', subHosts) : connection.hosts,
    drainTimeoutS: numberFlag(values, 'drain-timeout', { min: 0 }),
    publishDelayS: numberFlag(values, 'publish-delay', { min: 0 }),
    warmupS: numberFlag(values, 'warmup', { min: 0 }),
  };
}

function connectionOptions(values: ConnectionValues, defaultCount: number): ConnectionOptions {
  const username = values.username;
  const password = values.password;
  return {
    ...endpoints(values),
    ...(typeof username === 'string' ? { username } : {}),
    ...(typeof password === 'string' ? { password } : {}),
    count: values.count === undefined ? defaultCount : integerFlag(values, 'count', { min: 1 }),
    intervalMs: numberFlag(values, 'interval', { min: 0 }),
    concurrency: integerFlag(values, 'concurrency', { min: 1 }),
    clientIdPrefix: typeof values['client-id-prefix'] === 'string' ? values['client-id-prefix'] : `mb${process.pid}_`,
    clean: booleanFlag(values, 'clean'),
    keepaliveS: integerFlag(values, 'keepalive', { min: 0, max: 65535 }),
    connectTimeoutMs: numberFlag(values, 'connect-timeout', { min: 0.001 }) * 1000,
    protocolVersion: protocolVersionFlag(values),
  };
}

/** --hosts, or the single --host/--port (defaults localhost:1883); the first endpoint is also host/port. */
function endpoints(values: ConnectionValues): { host: string; port: number; hosts: Endpoint[] } {
  if (typeof values.hosts === 'string') {
    if (values.host !== undefined || values.port !== undefined) {
      throw new BenchUsageError('--hosts replaces --host and --port: give one or the other');
    }
    const hosts = parseHostList('--hosts', values.hosts);
    const [first] = hosts as [Endpoint, ...Endpoint[]];
    return { host: first.host, port: first.port, hosts };
  }
  const host = values.host === undefined ? 'localhost' : stringFlag(values, 'host');
  const port = values.port === undefined ? 1883 : integerFlag(values, 'port', { min: 1, max: 65535 });
  return { host, port, hosts: [{ host, port }] };
}

/** "host:port,host:port,[::1]:port" → endpoints, in the given order (the round-robin order). */
export function parseHostList(flag: string, list: string): Endpoint[] {
  const entries = list.split(',').map((entry) => entry.trim());
  if (entries.some((entry) => entry.length === 0)) throw new BenchUsageError(`${flag} has an empty entry in "${list}"`);
  return entries.map((entry) => parseEndpoint(flag, entry));
}

function parseEndpoint(flag: string, entry: string): Endpoint {
  const colon = entry.lastIndexOf(':');
  if (colon <= 0) throw new BenchUsageError(`${flag}: "${entry}" is not host:port`);
  const rawHost = entry.slice(0, colon);
  const host = rawHost.startsWith('[') && rawHost.endsWith(']') ? rawHost.slice(1, -1) : rawHost;
  const rawPort = entry.slice(colon + 1);
  const port = Number(rawPort);
  if (host.length === 0 || !/^\d+$/.test(rawPort) || port < 1 || port > 65535) {
    throw new BenchUsageError(`${flag}: "${entry}" is not host:port with a port from 1 to 65535`);
  }
  return { host, port };
}

function readyFile(value: FlagValue): { readyFile?: string } {
  return typeof value === 'string' ? { readyFile: value } : {};
}

function checkTopic(flag: string, template: string, problemOf: (topic: string) => string | undefined): void {
  // Check with a representative expansion: %i and %c never introduce wildcards or empty levels.
  const problem = problemOf(template.replace(/%[ic%]/g, 'x'));
  if (problem !== undefined) throw new BenchUsageError(`${flag}: ${problem}`);
}

interface Bounds {
  min?: number;
  max?: number;
}

function stringFlag(values: Record<string, FlagValue>, name: string): string {
  const value = values[name];
  if (typeof value !== 'string' || value.length === 0) throw new BenchUsageError(`--${name} needs a value`);
  return value;
}

function numberFlag(values: Record<string, FlagValue>, name: string, bounds: Bounds): number {
  const raw = stringFlag(values, name);
  const value = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(value)) throw new BenchUsageError(`--${name} must be a number, got "${raw}"`);
  if (bounds.min !== undefined && value < bounds.min) throw new BenchUsageError(`--${name} must be >= ${bounds.min}, got ${raw}`);
  if (bounds.max !== undefined && value > bounds.max) throw new BenchUsageError(`--${name} must be <= ${bounds.max}, got ${raw}`);
  return value;
}

function integerFlag(values: Record<string, FlagValue>, name: string, bounds: Bounds): number {
  const value = numberFlag(values, name, bounds);
  if (!Number.isInteger(value)) throw new BenchUsageError(`--${name} must be a whole number, got ${value}`);
  return value;
}

function qosFlag(values: Record<string, FlagValue>, name: string): QoS {
  const value = integerFlag(values, name, { min: 0, max: 2 });
  return value as QoS;
}

function protocolVersionFlag(values: Record<string, FlagValue>): ProtocolVersion {
  const raw = stringFlag(values, 'protocol-version');
  if (raw === '4' || raw === '3.1.1') return 4;
  if (raw === '5') return 5;
  throw new BenchUsageError(`--protocol-version must be 4 (MQTT 3.1.1) or 5, got "${raw}"`);
}

function booleanFlag(values: Record<string, FlagValue>, name: string): boolean {
  const raw = stringFlag(values, name);
  if (raw === 'true') return true;
  if (raw === 'false') return false;
  throw new BenchUsageError(`--${name} must be true or false, got "${raw}"`);
}
