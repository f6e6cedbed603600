import mqtt, { Store, type IClientOptions, type MqttClient } from 'mqtt';
import { AccessEvent, AccessKind, ReceiverStats, ReceiverTally, decodeEvent, encodeEvent } from './tally.js';

export type ScenarioRegion = 'us-east' | 'us-west' | 'emea';
export type Tenant = 'acme' | 'globex';
export const TENANTS: readonly Tenant[] = ['acme', 'globex'];

/** Where the workload connects: Meridian regions (tenant users with mountpoints) or plain brokers (full topics). */
export interface WorkloadTarget {
  /** 'meridian' or 'mosquitto': for reports. */
  name: string;
  port(region: ScenarioRegion): number;
  /** MQTT credentials of a tenant's clients; undefined for anonymous brokers. */
  credentials(tenant: Tenant): { username: string; password: string } | undefined;
  /**
   * True when the broker maps each tenant user into a mountpoint `<tenant>/`: clients then publish and subscribe
   * without the tenant prefix. False: clients use the full internal topic (`acme/<site>/access/...`).
   */
  mountpoints: boolean;
}

export interface WorkloadOptions {
  /** Door controllers per tenant and region (default acme: us-east 200, us-west 100; globex: 50 + 50). */
  doors?: Partial<Record<Tenant, Partial<Record<ScenarioRegion, number>>>>;
  /** Mean interval between two events of one door, ms (default 2000). */
  eventIntervalMs?: number;
  /** Share of events that are denials and intrusions (defaults 0.15 and 0.05; the rest are grants). */
  deniedShare?: number;
  intrusionShare?: number;
  /** Doors per site (default 10). */
  doorsPerSite?: number;
  /** Prefix of every client id, so two workloads against one broker do not collide (default 'e2e'). */
  clientIdPrefix?: string;
  log?: (line: string) => void;
}

const DEFAULT_DOORS: Record<Tenant, Partial<Record<ScenarioRegion, number>>> = {
  acme: { 'us-east': 200, 'us-west': 100 },
  globex: { 'us-east': 50, 'us-west': 50 },
};

/** The receivers of the scenario and what each must get. */
export const RECEIVERS = {
  /** acme's audit service: persistent session in US-West, every acme event. */
  acmeAudit: { name: 'acme-audit', tenant: 'acme', region: 'us-west', filters: ['+/access/#'], persistent: true },
  /** globex's audit service: persistent session in US-West, every globex event. */
  globexAudit: { name: 'globex-audit', tenant: 'globex', region: 'us-west', filters: ['+/access/#'], persistent: true },
  /** acme's security officer dashboard in EMEA: denials and intrusions only. */
  emeaDashboard: { name: 'emea-dashboard', tenant: 'acme', region: 'emea', filters: ['+/access/+/denied', '+/access/+/intrusion'], persistent: false },
} as const satisfies Record<string, ReceiverSpec>;

export interface ReceiverSpec {
  name: string;
  tenant: Tenant;
  region: ScenarioRegion;
  /** Filters as the tenant's client writes them (without the mountpoint). */
  filters: readonly string[];
  persistent: boolean;
}

export type ReceiverName = (typeof RECEIVERS)[keyof typeof RECEIVERS]['name'];

export function receiverWants(spec: ReceiverSpec, event: AccessEvent): boolean {
  if (event.tenant !== spec.tenant) return false;
  return spec.filters.includes('+/access/#') || event.kind !== 'granted';
}

interface Door {
  tenant: Tenant;
  region: ScenarioRegion;
  /** `<site>/<door>` */
  id: string;
  clientId: string;
  client?: MqttClient;
  seq: number;
  nextAt: number;
}

/** Result of one stream: what was sent and what each receiver got. */
export interface StreamResult {
  run: string;
  /** Events published, per tenant and origin region (`acme:us-east`). */
  sentBy: Record<string, number>;
  sent: number;
  /** Publishes whose QoS 2 handshake had not completed (or failed) when the drain ended. */
  unacknowledged: number;
  /** First publish errors (client id, sequence, error), at most 20. */
  publishErrors: string[];
  /** Publishes the client reported failed (not acknowledged by the broker): not expected at any receiver. */
  failedPublishes: number;
  receivers: Record<ReceiverName, ReceiverStats>;
  /** Events of this stream per tenant, origin region and kind (`acme:us-east:denied`). */
  sentByKind: Record<string, number>;
  durationMs: number;
}

/**
 * The access-control workload: door controllers (MQTT clients, persistent sessions, QoS 2) in US-East and US-West
 * publishing `<site>/access/<door>/<kind>` with a per-door sequence, and the scenario's receivers tallying what
 * arrives. Clients stay connected across streams (drills); each stream has its own tally.
 */
export class Workload {
  private readonly doors: Door[] = [];
  private readonly receivers = new Map<ReceiverName, { spec: ReceiverSpec; client?: MqttClient }>();
  /**
   * A persistent receiver's client-side session state, kept across its connections as the session requires: MQTT.js
   * holds a QoS 2 message it has PUBRECed until the PUBREL, and a new client without that store would answer the
   * PUBREL of the resumed session with PUBCOMP and never deliver the message.
   */
  private readonly sessionStores = new Map<ReceiverName, { incomingStore: Store; outgoingStore: Store }>();
  private readonly tallies = new Map<string, Map<ReceiverName, ReceiverTally>>();
  private readonly log: (line: string) => void;
  private stray = 0;
  private readonly options: Required<Omit<WorkloadOptions, 'doors' | 'log'>>;

  private constructor(private readonly target: WorkloadTarget, options: WorkloadOptions) {
    this.log = options.log ?? (() => undefined);
    this.options = {
      eventIntervalMs: options.eventIntervalMs ?? 2000,
      deniedShare: options.deniedShare ?? 0.15,
      intrusionShare: options.intrusionShare ?? 0.05,
      doorsPerSite: options.doorsPerSite ?? 10,
      clientIdPrefix: options.clientIdPrefix ?? 'e2e',
    };
    if (!(this.options.eventIntervalMs > 0)) throw new Error(`eventIntervalMs must be > 0, got ${this.options.eventIntervalMs}`);
    const doors = { acme: { ...DEFAULT_DOORS.acme, ...options.doors?.acme }, globex: { ...DEFAULT_DOORS.globex, ...options.doors?.globex } };
    for (const tenant of TENANTS) {
      for (const [region, count] of Object.entries(doors[tenant]) as Array<[ScenarioRegion, number]>) {
        if (!Number.isInteger(count) || count < 0) throw new Error(`doors.${tenant}.${region} must be a non-negative integer, got ${count}`);
        for (let i = 0; i < count; i++) this.doors.push(this.door(tenant, region, i));
      }
    }
  }

  /** Connects the receivers first (so their subscriptions exist), then every door controller. */
  static async start(target: WorkloadTarget, options: WorkloadOptions = {}): Promise<Workload> {
    const workload = new Workload(target, options);
    try {
      for (const spec of Object.values(RECEIVERS)) await workload.connectReceiver(spec);
      await workload.connectDoors();
    } catch (err) {
      await workload.stop();
      throw err;
    }
    return workload;
  }

  get doorCount(): number {
    return this.doors.length;
  }

  /** Messages received that belong to no known stream (e.g. a stream already forgotten). */
  get strayMessages(): number {
    return this.stray;
  }

  /** Starts publishing; the returned stream stops with `stop()` and reports with `drain()`. */
  startStream(run: string): Stream {
    if (this.tallies.has(run)) throw new Error(`stream ${run} was already started`);
    const tallies = new Map<ReceiverName, ReceiverTally>();
    for (const spec of Object.values(RECEIVERS)) tallies.set(spec.name, new ReceiverTally(spec.name, (e) => receiverWants(spec, e)));
    this.tallies.set(run, tallies);
    const now = Date.now();
    for (const door of this.doors) door.nextAt = now + Math.random() * this.options.eventIntervalMs;
    return new Stream(run, this.doors, tallies, this.options, this.target, this.log);
  }

  /** Disconnects a receiver cleanly (a persistent one keeps its session in the broker). */
  async takeOffline(name: ReceiverName): Promise<void> {
    const entry = this.receiverEntry(name);
    const client = entry.client;
    entry.client = undefined;
    if (client) await client.endAsync(false);
  }

  /** Reconnects a receiver taken offline (same client id; a persistent session resumes). */
  async bringOnline(name: ReceiverName): Promise<void> {
    const entry = this.receiverEntry(name);
    if (entry.client) throw new Error(`receiver ${name} is already online`);
    await this.connectReceiver(entry.spec);
  }

  async stop(): Promise<void> {
    const clients = [...this.doors.map((d) => d.client), ...[...this.receivers.values()].map((r) => r.client)];
    await Promise.all(clients.map((c) => c?.endAsync(true).catch(() => undefined)));
    for (const door of this.doors) door.client = undefined;
    for (const entry of this.receivers.values()) entry.client = undefined;
  }

  private receiverEntry(name: ReceiverName): { spec: ReceiverSpec; client?: MqttClient } {
    const entry = this.receivers.get(name);
    if (!entry) throw new Error(`unknown receiver ${name}`);
    return entry;
  }

  private door(tenant: Tenant, region: ScenarioRegion, index: number): Door {
    const site = `${region}-site${String(Math.floor(index / this.options.doorsPerSite)).padStart(2, '0')}`;
    const id = `${site}/door${String(index % this.options.doorsPerSite).padStart(2, '0')}`;
    const clientId = `${this.options.clientIdPrefix}-${tenant}-${site}-${index % this.options.doorsPerSite}`;
    return { tenant, region, id, clientId, seq: 0, nextAt: 0 };
  }

  private clientOptions(tenant: Tenant, clientId: string, clean: boolean): IClientOptions {
    return {
      clientId,
      clean,
      protocolVersion: 4,
      reconnectPeriod: 500,
      connectTimeout: 10000,
      keepalive: 30,
      ...this.target.credentials(tenant),
    };
  }

  private async connectReceiver(spec: ReceiverSpec): Promise<void> {
    const name = spec.name as ReceiverName;
    const options = this.clientOptions(spec.tenant, `${this.options.clientIdPrefix}-${spec.name}`, !spec.persistent);
    if (spec.persistent) {
      let stores = this.sessionStores.get(name);
      if (!stores) {
        stores = { incomingStore: new Store({ clean: false }), outgoingStore: new Store({ clean: false }) };
        this.sessionStores.set(name, stores);
      }
      Object.assign(options, stores);
    }
    const { client, sessionPresent } = await connectWithSession(this.target.port(spec.region), options);
    client.on('message', (_topic, payload) => this.onMessage(name, payload));
    const filters = spec.filters.map((f) => topicFor(this.target, spec.tenant, f));
    // A resumed persistent session keeps its subscriptions: an audit service coming back does not subscribe again.
    const resumed = spec.persistent && sessionPresent;
    if (!resumed) {
      const granted = await client.subscribeAsync(filters, { qos: 2 });
      const refused = granted.filter((g) => g.qos !== 2);
      if (refused.length > 0) throw new Error(`${spec.name}: subscription not granted at QoS 2: ${JSON.stringify(refused)}`);
    }
    this.receivers.set(name, { spec, client });
    this.log(`${this.target.name}: receiver ${spec.name} ${resumed ? 'resumed its session' : 'connected'} in ${spec.region} (${filters.join(', ')})`);
  }

  private async connectDoors(): Promise<void> {
    const started = Date.now();
    const batch = 25;
    for (let i = 0; i < this.doors.length; i += batch) {
      await Promise.all(this.doors.slice(i, i + batch).map(async (door) => {
        door.client = await connect(this.target.port(door.region), this.clientOptions(door.tenant, door.clientId, false));
      }));
    }
    this.log(`${this.target.name}: ${this.doors.length} door controllers connected in ${Date.now() - started} ms`);
  }

  private onMessage(receiver: string, payload: Buffer): void {
    const receivedAt = Date.now();
    let event: AccessEvent;
    try {
      event = decodeEvent(payload);
    } catch {
      this.stray++;
      return;
    }
    const tally = this.tallies.get(event.run)?.get(receiver as ReceiverName);
    if (!tally) {
      this.stray++;
      return;
    }
    tally.received(event, receivedAt);
  }
}

/** One stream of events (one drill): publishing until `stop()`, then `drain()` waits for every receiver. */
export class Stream {
  private timer?: NodeJS.Timeout;
  private readonly startedAt = Date.now();
  private stoppedAt?: number;
  private readonly sentBy: Record<string, number> = {};
  private readonly sentByKind: Record<string, number> = {};
  private sent = 0;
  private pending = 0;
  private readonly publishErrors: string[] = [];
  private failedPublishes = 0;

  constructor(
    readonly run: string,
    private readonly doors: Door[],
    private readonly tallies: Map<ReceiverName, ReceiverTally>,
    private readonly options: Required<Omit<WorkloadOptions, 'doors' | 'log'>>,
    private readonly target: WorkloadTarget,
    private readonly log: (line: string) => void,
  ) {
    this.timer = setInterval(() => this.tick(), 20);
  }

  get sentCount(): number {
    return this.sent;
  }

  /** Events of this stream not yet received by `receiver`. */
  missing(receiver: ReceiverName): number {
    return this.tally(receiver).missing();
  }

  /** First deliveries so far to `receiver` of events published in `region`. */
  deliveredFrom(receiver: ReceiverName, region: ScenarioRegion): number {
    return this.tally(receiver).deliveredFrom(region);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.stoppedAt ??= Date.now();
  }

  /**
   * Stops publishing, waits until every publish completed and every receiver has all it should get (at most
   * `timeoutMs`, or until nothing arrived for `stallMs`), then `graceMs` more so late duplicates are counted.
   */
  async drain(timeoutMs: number, graceMs = 1500, stallMs = 30000): Promise<StreamResult> {
    this.stop();
    const deadline = Date.now() + timeoutMs;
    const missing = (): number => [...this.tallies.values()].reduce((n, t) => n + t.missing(), 0);
    const complete = (): boolean => this.pending === 0 && missing() === 0;
    // Stop waiting early when nothing has arrived for `stallMs` and every publish completed: the rest is lost.
    let lastMissing = missing();
    let lastProgress = Date.now();
    while (!complete() && Date.now() < deadline) {
      await sleep(100);
      const now = missing();
      if (now !== lastMissing || this.pending > 0) {
        lastMissing = now;
        lastProgress = Date.now();
      } else if (Date.now() - lastProgress > stallMs) break;
    }
    if (!complete()) this.log(`stream ${this.run}: not complete after ${timeoutMs} ms (${this.pending} publishes pending; missing ${[...this.tallies.entries()].map(([n, t]) => `${n} ${t.missing()}`).join(', ')})`);
    await sleep(graceMs);
    const receivers = Object.fromEntries([...this.tallies].map(([name, tally]) => [name, tally.stats()])) as Record<ReceiverName, ReceiverStats>;
    return {
      run: this.run,
      sent: this.sent,
      sentBy: { ...this.sentBy },
      sentByKind: { ...this.sentByKind },
      unacknowledged: this.pending,
      publishErrors: [...this.publishErrors],
      failedPublishes: this.failedPublishes,
      receivers,
      durationMs: (this.stoppedAt ?? Date.now()) - this.startedAt,
    };
  }

  private tally(receiver: ReceiverName): ReceiverTally {
    const tally = this.tallies.get(receiver);
    if (!tally) throw new Error(`unknown receiver ${receiver}`);
    return tally;
  }

  private tick(): void {
    const now = Date.now();
    for (const door of this.doors) {
      if (door.nextAt > now || !door.client) continue;
      // Jittered interval around the mean, so doors do not fall into lock step.
      door.nextAt = now + this.options.eventIntervalMs * (0.5 + Math.random());
      this.publish(door, now);
    }
  }

  private publish(door: Door, now: number): void {
    const client = door.client;
    if (!client) return;
    const kind = this.pickKind();
    door.seq++;
    const event: AccessEvent = { tenant: door.tenant, region: door.region, door: door.id, kind, seq: door.seq, sentAt: now, run: this.run };
    for (const tally of this.tallies.values()) tally.sent(event);
    this.sent++;
    this.sentBy[`${door.tenant}:${door.region}`] = (this.sentBy[`${door.tenant}:${door.region}`] ?? 0) + 1;
    const kindKey = `${door.tenant}:${door.region}:${kind}`;
    this.sentByKind[kindKey] = (this.sentByKind[kindKey] ?? 0) + 1;
    this.pending++;
    const [site, doorName] = door.id.split('/') as [string, string];
    const topic = topicFor(this.target, door.tenant, `${site}/access/${doorName}/${kind}`);
    client.publish(topic, encodeEvent(event), { qos: 2 }, (err) => {
      this.pending--;
      if (!err) return;
      // Not acknowledged by the broker (MQTT.js drops a publish queued while it replays its store and the connection
      // closes again): the broker owes nothing for it, so it leaves the expectations and is reported separately.
      this.failedPublishes++;
      for (const tally of this.tallies.values()) tally.unsent(event);
      if (this.publishErrors.length < 20) this.publishErrors.push(`${door.clientId} seq ${event.seq}: ${err.message}`);
    });
  }

  private pickKind(): AccessKind {
    const r = Math.random();
    if (r < this.options.intrusionShare) return 'intrusion';
    if (r < this.options.intrusionShare + this.options.deniedShare) return 'denied';
    return 'granted';
  }
}

/** The topic a tenant's client uses: as is under a mountpoint, else with the tenant prefix. */
export function topicFor(target: WorkloadTarget, tenant: Tenant, topic: string): string {
  return target.mountpoints ? topic : `${tenant}/${topic}`;
}

/** Connects with MQTT.js (reconnecting after the first CONNACK); rejects on the first connection's failure. */
async function connect(port: number, options: IClientOptions): Promise<MqttClient> {
  return (await connectWithSession(port, options)).client;
}

function connectWithSession(port: number, options: IClientOptions): Promise<{ client: MqttClient; sessionPresent: boolean }> {
  const url = `mqtt://127.0.0.1:${port}`;
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(url, options);
    const fail = (err: Error): void => {
      client.end(true);
      reject(new Error(`${options.clientId}: could not connect to ${url}: ${err.message}`));
    };
    const timer = setTimeout(() => fail(new Error('no CONNACK within 15 s')), 15000);
    client.once('connect', (connack) => {
      clearTimeout(timer);
      client.removeListener('error', fail);
      client.on('error', () => undefined);
      resolve({ client, sessionPresent: connack.sessionPresent });
    });
    client.once('error', fail);
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
