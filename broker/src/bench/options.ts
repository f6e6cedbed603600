/** Typed, validated options for each `meridian bench` command. Parsing from argv lives in args.ts. */
export type BenchCommandName = 'conn' | 'sub' | 'pub';
export type QoS = 0 | 1 | 2;
export type ProtocolVersion = 4 | 5;

/** One broker address a bench client connects to. */
export interface Endpoint {
  host: string;
  port: number;
}

export interface ConnectionOptions {
  /** --host/--port, or the first of --hosts. */
  host: string;
  port: number;
  /**
   * The brokers the clients connect to, round-robin by client index: client i (1-based) uses
   * hosts[(i - 1) % hosts.length]. From --hosts, or the single --host/--port.
   */
  hosts: Endpoint[];
  username?: string;
  password?: string;
  /** Number of clients this command opens (publishers for `pub`). */
  count: number;
  /** Milliseconds between the starts of two connection attempts. */
  intervalMs: number;
  /** Most connection attempts awaiting CONNACK at once. */
  concurrency: number;
  clientIdPrefix: string;
  clean: boolean;
  keepaliveS: number;
  connectTimeoutMs: number;
  protocolVersion: ProtocolVersion;
}

export interface ConnOptions extends ConnectionOptions {
  /** Seconds to keep the connections open once all are up. */
  holdS: number;
  readyFile?: string;
}

export interface SubOptions extends ConnectionOptions {
  /** Filter templates; each client subscribes to all of them in one SUBSCRIBE. */
  topics: string[];
  qos: QoS;
  /** Seconds to receive once all are subscribed; 0 ends right after the last SUBACK. */
  durationS: number;
  /** Stop receiving after this many messages in total; 0 = no limit. */
  messages: number;
  readyFile?: string;
}

export interface PubOptions extends ConnectionOptions {
  topic: string;
  qos: QoS;
  payloadSize: number;
  /** Messages per second per publisher; 0 = as fast as flow control allows. */
  rate: number;
  durationS: number;
  /** Messages per publisher; 0 = publish until the duration ends. */
  messages: number;
  /** Most unacknowledged QoS 1/2 messages per publisher, and the QoS 0 batch written per event-loop turn. */
  inflight: number;
  subscribers: number;
  /** With subscribers: most messages per publisher sent but not yet received; 0 = no limit. */
  e2eWindow: number;
  subTopic: string;
  subQos: QoS;
  /** Brokers the in-process subscribers connect to, round-robin like `hosts` (default: `hosts`). */
  subHosts: Endpoint[];
  /**
   * Seconds between the last subscriber's SUBACK and the publishers' first CONNECT: in a cluster, a subscriber's
   * route reaches the other nodes a few milliseconds after its SUBACK, and what is published there before is not
   * forwarded to it.
   */
  publishDelayS: number;
  /**
   * With subscribers: seconds at the start of publishing whose messages count as received but not in the latency
   * figures — the first few hundred ms measure this process's own warm-up (JIT, heap growth) as much as the broker.
   */
  warmupS: number;
  /** Seconds to wait after publishing for outstanding acks and deliveries. */
  drainTimeoutS: number;
}

export type BenchInvocation =
  | { command: 'conn'; options: ConnOptions; json: boolean }
  | { command: 'sub'; options: SubOptions; json: boolean }
  | { command: 'pub'; options: PubOptions; json: boolean };
