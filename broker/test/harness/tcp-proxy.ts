import net, { type AddressInfo, type Server, type Socket } from 'node:net';

interface Pair {
  client: Socket;
  upstream: Socket;
  /** A leg closed while the pair was blackholed; the other leg is closed at `restore()`. */
  brokenWhileHeld: boolean;
  /** Per direction (keyed by the reading socket): chunks waiting for their delivery time. */
  lanes: Map<Socket, Lane>;
}

/** One direction of a connection while delay, jitter or a throttle applies: a FIFO with delivery times. */
interface Lane {
  queue: Array<{ chunk: Buffer; at: number }>;
  queuedBytes: number;
  /** Delivery time of the last chunk queued: later chunks never go earlier (order within a connection). */
  lastAt: number;
  /** When the throttled "line" is free again (serialisation time of the bytes before). */
  lineFreeAt: number;
  timer?: NodeJS.Timeout;
  /** The reading side is paused because the lane holds too many bytes. */
  full: boolean;
}

/** Bytes a lane may hold before the reading side is paused (TCP back-pressure to the sender), and resumed below. */
const LANE_HIGH_WATER = 1 << 20;
const LANE_LOW_WATER = 1 << 18;

type Mode = 'forward' | 'blackhole' | 'refuse';

export interface TcpProxyOptions {
  /** Port to listen on (default 0: any free port). */
  listenPort?: number;
  /** One-way delay added to every chunk in both directions, in ms (default 0). */
  delayMs?: number;
  /** Extra random delay per chunk, uniform in [0, jitterMs) (default 0); order within a connection is kept. */
  jitterMs?: number;
  /** Bandwidth of each direction of each connection, bytes per second (default unlimited). */
  bytesPerSecond?: number;
}

/**
 * A loopback TCP proxy the tests control: forward, cut every connection, refuse new ones, or blackhole (bytes
 * stop flowing in both directions and a leg that closes is not reported to the other side — what a partition
 * looks like to both ends).
 */
export class TcpProxy {
  private readonly pairs = new Set<Pair>();
  private mode: Mode = 'forward';
  private heldSource?: string;
  connectionsAccepted = 0;
  /** Bytes relayed from the dialing side to the target, and back. */
  bytesToTarget = 0;
  bytesFromTarget = 0;
  /** While true, bytes from the target to the dialing side are held (replies stop; requests still flow). */
  private repliesHeld = false;
  /**
   * One-way delay of every relayed chunk. Delayed chunks wait in a FIFO per direction of a connection, so order is
   * kept even when the delay changes while bytes flow.
   */
  delayMs = 0;
  /** Extra random one-way delay per chunk, uniform in [0, jitterMs); chunks of a connection never overtake. */
  jitterMs = 0;
  /** Bandwidth per direction of each connection (undefined: unlimited); excess bytes wait, then the sender is paused. */
  bytesPerSecond: number | undefined;

  private constructor(private readonly server: Server, private targetPort: number, private readonly targetHost: string) {}

  static async start(targetPort: number, targetHost = '127.0.0.1', options: TcpProxyOptions = {}): Promise<TcpProxy> {
    const server = net.createServer();
    const proxy = new TcpProxy(server, targetPort, targetHost);
    proxy.delayMs = options.delayMs ?? 0;
    proxy.jitterMs = options.jitterMs ?? 0;
    proxy.bytesPerSecond = options.bytesPerSecond;
    server.on('connection', (client) => proxy.accept(client));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.listenPort ?? 0, '127.0.0.1', resolve);
    });
    return proxy;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  setTarget(port: number): void {
    this.targetPort = port;
  }

  /** Destroy every open connection (both legs); new connections are still forwarded. */
  cut(): void {
    for (const pair of this.pairs) this.destroyPair(pair);
  }

  /** Refuse new connections (accepted and immediately closed) until `restore()`. */
  refuse(): void {
    this.mode = 'refuse';
  }

  /**
   * Stops bytes in both directions. With `fromAddress`, only connections whose client end has that address are
   * held (a node that dials from its own loopback address can be partitioned while the others still talk).
   */
  blackhole(fromAddress?: string): void {
    this.mode = 'blackhole';
    this.heldSource = fromAddress;
    for (const pair of this.pairs) {
      if (!this.held(pair)) continue;
      pair.client.pause();
      pair.upstream.pause();
    }
  }

  /** Zeroes the byte counters. */
  resetCounters(): void {
    this.bytesToTarget = 0;
    this.bytesFromTarget = 0;
  }

  /** Holds the target's replies (acknowledgements) in every open and new connection until `releaseReplies()`. */
  holdReplies(): void {
    this.repliesHeld = true;
    for (const pair of this.pairs) pair.upstream.pause();
  }

  releaseReplies(): void {
    this.repliesHeld = false;
    for (const pair of this.pairs) if (!this.held(pair)) pair.upstream.resume();
  }

  restore(): void {
    const wasBlackhole = this.mode === 'blackhole';
    this.mode = 'forward';
    this.heldSource = undefined;
    if (!wasBlackhole) return;
    for (const pair of this.pairs) {
      if (pair.brokenWhileHeld) this.destroyPair(pair);
      else {
        pair.client.resume();
        pair.upstream.resume();
      }
    }
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    this.connectionsAccepted++;
    if (this.mode === 'refuse') {
      client.destroy();
      return;
    }
    const upstream = net.connect(this.targetPort, this.targetHost);
    // A wire, not a second sender: Nagle's algorithm here would hold relayed chunks back on top of the delay.
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    const pair: Pair = { client, upstream, brokenWhileHeld: false, lanes: new Map() };
    this.pairs.add(pair);
    if (this.held(pair)) {
      client.pause();
      upstream.pause();
    }
    if (this.repliesHeld) upstream.pause();
    this.relay(pair, client, upstream);
    this.relay(pair, upstream, client);
  }

  private relay(pair: Pair, from: Socket, to: Socket): void {
    from.on('data', (chunk: Buffer) => {
      if (from === pair.client) this.bytesToTarget += chunk.length;
      else this.bytesFromTarget += chunk.length;
      const lane = this.lane(pair, from);
      if (this.delayMs > 0 || this.jitterMs > 0 || this.bytesPerSecond !== undefined || lane.queue.length > 0) {
        this.schedule(pair, lane, chunk, from, to);
        return;
      }
      if (!to.write(chunk)) from.pause();
    });
    to.on('drain', () => {
      if (this.mayResume(pair, from)) from.resume();
    });
    from.on('error', () => undefined);
    from.on('close', () => {
      if (this.held(pair)) {
        pair.brokenWhileHeld = true;
        return;
      }
      this.destroyPair(pair);
    });
  }

  private lane(pair: Pair, from: Socket): Lane {
    let lane = pair.lanes.get(from);
    if (!lane) {
      lane = { queue: [], queuedBytes: 0, lastAt: 0, lineFreeAt: 0, full: false };
      pair.lanes.set(from, lane);
    }
    return lane;
  }

  private mayResume(pair: Pair, from: Socket): boolean {
    return !this.held(pair) && !(from === pair.upstream && this.repliesHeld) && !pair.lanes.get(from)?.full;
  }

  /** Queues a chunk for delivery after the line is free (throttle), plus delay and jitter, never before the previous one. */
  private schedule(pair: Pair, lane: Lane, chunk: Buffer, from: Socket, to: Socket): void {
    const now = performance.now();
    let sent = now;
    if (this.bytesPerSecond !== undefined && this.bytesPerSecond > 0) {
      sent = Math.max(now, lane.lineFreeAt) + (chunk.length * 1000) / this.bytesPerSecond;
      lane.lineFreeAt = sent;
    }
    const at = Math.max(sent + this.delayMs + Math.random() * this.jitterMs, lane.lastAt);
    lane.lastAt = at;
    lane.queue.push({ chunk, at });
    lane.queuedBytes += chunk.length;
    if (lane.queuedBytes > LANE_HIGH_WATER && !lane.full) {
      lane.full = true;
      from.pause();
    }
    if (!lane.timer) this.armLane(pair, lane, from, to);
  }

  private armLane(pair: Pair, lane: Lane, from: Socket, to: Socket): void {
    const head = lane.queue[0];
    if (!head) return;
    lane.timer = setTimeout(() => {
      lane.timer = undefined;
      this.deliverDue(pair, lane, from, to);
    }, Math.max(0, head.at - performance.now()));
  }

  private deliverDue(pair: Pair, lane: Lane, from: Socket, to: Socket): void {
    const now = performance.now();
    let writable = true;
    while (lane.queue.length && lane.queue[0]!.at <= now + 0.5) {
      const { chunk } = lane.queue.shift()!;
      lane.queuedBytes -= chunk.length;
      if (!to.destroyed) writable = to.write(chunk) && writable;
    }
    if (!writable) from.pause();
    if (lane.full && lane.queuedBytes < LANE_LOW_WATER) {
      lane.full = false;
      if (writable && this.mayResume(pair, from)) from.resume();
    }
    if (!to.destroyed) this.armLane(pair, lane, from, to);
  }

  private held(pair: Pair): boolean {
    if (this.mode !== 'blackhole') return false;
    return this.heldSource === undefined || pair.client.remoteAddress === this.heldSource;
  }

  private destroyPair(pair: Pair): void {
    for (const lane of pair.lanes.values()) clearTimeout(lane.timer);
    pair.client.destroy();
    pair.upstream.destroy();
    this.pairs.delete(pair);
  }
}
