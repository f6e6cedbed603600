import { Socket } from 'node:net';
import mqtt, { type IClientOptions, type IConnackPacket, type MqttClient } from 'mqtt';
import type { ConnectionOptions, Endpoint, QoS } from './options.js';
import { ratePerSecond, Sample, type Distribution } from './stats.js';
import { expandTemplate } from './template.js';
import { raceTimeout, sleepUntil } from './timing.js';

/** A bench run failed for a reason outside the command line: `meridian bench` prints it and exits 1. */
export class BenchRunError extends Error {
  override name = 'BenchRunError';
}

/** A client could not connect or subscribe, or lost its connection mid-run. */
export class BenchConnectionError extends BenchRunError {
  override name = 'BenchConnectionError';
}

export interface BenchClient {
  readonly client: MqttClient;
  /** 1-based index, the value of `%i`. */
  readonly index: number;
  readonly clientId: string;
  /** The broker's Receive Maximum from an MQTT 5 CONNACK: the most unacknowledged QoS 1/2 publishes it accepts. */
  readonly receiveMaximum?: number;
}

export interface PhaseTimes {
  /** Clients (or subscriptions) that completed the phase. */
  count: number;
  /** From the first attempt to the last completion. */
  elapsedMs: number;
  ratePerSec: number;
  /** Per-client time from request (CONNECT or SUBSCRIBE) to reply (CONNACK or SUBACK). */
  perClientMs: Distribution | undefined;
}

const CLOSE_TIMEOUT_MS = 3000;

/** The clients of one role, watched for unexpected disconnects from CONNACK until close(). */
export class ClientPool {
  readonly clients: BenchClient[] = [];
  private closing = false;
  private lostConnection: BenchConnectionError | undefined;

  constructor(
    readonly role: string,
    private readonly endpoint: string,
  ) {}

  /** The first unexpected disconnect or client error since the clients connected, if any. */
  get lost(): BenchConnectionError | undefined {
    return this.lostConnection;
  }

  add(benchClient: BenchClient): void {
    this.clients.push(benchClient);
    const { client, clientId } = benchClient;
    client.on('error', (error: Error) => this.markLost(`${clientId}: ${error.message}`));
    client.on('close', () => this.markLost(`${clientId}: connection closed by ${this.endpoint}`));
  }

  /** Sends DISCONNECT on every client and waits for the sockets to close; stragglers are destroyed. */
  async close(): Promise<void> {
    this.closing = true;
    const ended = this.clients.map(({ client }) => new Promise<void>((resolve) => client.end(false, {}, () => resolve())));
    const timedOut = await raceTimeout(Promise.all(ended), CLOSE_TIMEOUT_MS);
    if (timedOut) for (const { client } of this.clients) client.stream.destroy();
  }

  private markLost(reason: string): void {
    if (this.closing || this.lostConnection) return;
    this.lostConnection = new BenchConnectionError(`${this.role} client lost its connection to ${this.endpoint}: ${reason}`);
  }
}

/** The brokers of a run, for reports and error messages: "host:port" or "host:port,host:port". */
export function endpointOf(options: ConnectionOptions): string {
  return options.hosts.map(formatEndpoint).join(',');
}

/** The broker client `index` (1-based) connects to: round-robin over --hosts. */
export function endpointFor(options: ConnectionOptions, index: number): Endpoint {
  const endpoint = options.hosts[(index - 1) % options.hosts.length];
  if (endpoint === undefined) throw new BenchRunError('no broker address to connect to (empty --hosts)');
  return endpoint;
}

/** "host:port" of the broker client `index` connects to, for messages. */
export function clientEndpoint(options: ConnectionOptions, index: number): string {
  return formatEndpoint(endpointFor(options, index));
}

function formatEndpoint({ host, port }: Endpoint): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

export interface ConnectRequest {
  role: string;
  count: number;
  /** Runs right after CONNACK, inside the connection attempt, e.g. to subscribe or attach handlers. */
  afterConnect?: (benchClient: BenchClient) => Promise<void>;
}

/**
 * Opens `count` clients paced by --interval and capped by --concurrency. The first failure stops new
 * attempts, closes what was opened, and throws a BenchConnectionError naming the client and the cause.
 */
export async function connectClients(options: ConnectionOptions, request: ConnectRequest): Promise<{ pool: ClientPool; times: PhaseTimes }> {
  const pool = new ClientPool(request.role, endpointOf(options));
  const connectMs = new Sample();
  const pending = new Set<Promise<void>>();
  let failure: unknown;
  const startedAt = performance.now();
  for (let index = 1; index <= request.count && failure === undefined; index++) {
    await sleepUntil(startedAt + (index - 1) * options.intervalMs);
    while (pending.size >= options.concurrency) await Promise.race(pending);
    if (failure !== undefined) break;
    const attempt = openClient(options, request, index, pool, connectMs).then(
      () => undefined,
      (error: unknown) => {
        failure ??= error;
      },
    );
    const tracked = attempt.finally(() => pending.delete(tracked));
    pending.add(tracked);
  }
  await Promise.all(pending);
  if (failure !== undefined) {
    await pool.close();
    throw failure;
  }
  const elapsedMs = performance.now() - startedAt;
  return { pool, times: { count: connectMs.count, elapsedMs, ratePerSec: ratePerSecond(connectMs.count, elapsedMs), perClientMs: connectMs.summary() } };
}

async function openClient(options: ConnectionOptions, request: ConnectRequest, index: number, pool: ClientPool, connectMs: Sample): Promise<void> {
  const clientId = `${options.clientIdPrefix}${request.role}_${index}`;
  const requestedAt = performance.now();
  const endpoint = endpointFor(options, index);
  const { client, connack } = await connectOne(options, endpoint, clientId, `${request.role} client ${index} (${clientId})`);
  connectMs.add(performance.now() - requestedAt);
  const receiveMaximum = connack.properties?.receiveMaximum;
  const benchClient: BenchClient = { client, index, clientId, ...(receiveMaximum !== undefined ? { receiveMaximum } : {}) };
  pool.add(benchClient);
  await request.afterConnect?.(benchClient);
}

function connectOne(options: ConnectionOptions, endpoint: Endpoint, clientId: string, label: string): Promise<{ client: MqttClient; connack: IConnackPacket }> {
  const client = mqtt.connect(clientOptions(options, endpoint, clientId));
  // Nagle's algorithm would hold small publishes back for tens of ms and swamp the latency being measured.
  if (client.stream instanceof Socket) client.stream.setNoDelay(true);
  return new Promise((resolve, reject) => {
    const fail = (cause: string): void => {
      cleanUp();
      client.end(true);
      reject(new BenchConnectionError(`${label} could not connect to ${formatEndpoint(endpoint)}: ${cause}`));
    };
    const onError = (error: Error): void => fail(error.message);
    const onClose = (): void => fail('connection closed before CONNACK');
    const onConnect = (connack: IConnackPacket): void => {
      cleanUp();
      resolve({ client, connack });
    };
    const timer = setTimeout(() => fail(`no CONNACK within ${options.connectTimeoutMs / 1000} s`), options.connectTimeoutMs);
    const cleanUp = (): void => {
      clearTimeout(timer);
      client.off('error', onError);
      client.off('close', onClose);
      client.off('connect', onConnect);
      // A failed client may still emit errors while it is torn down; they are already reported.
      client.on('error', () => undefined);
    };
    client.once('connect', onConnect);
    client.on('error', onError);
    client.once('close', onClose);
  });
}

function clientOptions(options: ConnectionOptions, endpoint: Endpoint, clientId: string): IClientOptions {
  return {
    host: endpoint.host,
    port: endpoint.port,
    protocol: 'mqtt',
    clientId,
    clean: options.clean,
    keepalive: options.keepaliveS,
    protocolVersion: options.protocolVersion,
    reconnectPeriod: 0,
    // Our own timer reports the timeout; MQTT.js's would only close the socket silently.
    connectTimeout: options.connectTimeoutMs + 1000,
    ...(options.username !== undefined ? { username: options.username } : {}),
    ...(options.password !== undefined ? { password: options.password } : {}),
  };
}

/**
 * Subscribes one client to its expanded filters in one SUBSCRIBE, timing the SUBACK; a refused subscription
 * (SUBACK 0x80 or an MQTT 5 error code) fails the run.
 */
export async function subscribeClient(benchClient: BenchClient, templates: readonly string[], qos: QoS, subackMs: Sample, endpoint: string): Promise<void> {
  const filters = templates.map((template) => expandTemplate(template, benchClient));
  const filter = filters.join('", "');
  const requestedAt = performance.now();
  let granted;
  try {
    granted = await benchClient.client.subscribeAsync(filters, { qos });
  } catch (error) {
    const cause = error instanceof Error ? error.message : String(error);
    throw new BenchConnectionError(`${benchClient.clientId} could not subscribe to "${filter}" on ${endpoint}: ${cause}`);
  }
  const refused = granted.find((grant) => grant.qos > 2);
  if (refused !== undefined) {
    throw new BenchConnectionError(`${endpoint} refused ${benchClient.clientId}'s subscription to "${refused.topic}" (reason code ${refused.qos})`);
  }
  subackMs.add(performance.now() - requestedAt);
}

export function phaseTimes(sample: Sample, startedAt: number, endedAt: number): PhaseTimes {
  const elapsedMs = endedAt - startedAt;
  return { count: sample.count, elapsedMs, ratePerSec: ratePerSecond(sample.count, elapsedMs), perClientMs: sample.summary() };
}
