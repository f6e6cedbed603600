import net, { type AddressInfo, type Server, type Socket } from 'node:net';

interface Pair {
  client: Socket;
  upstream: Socket;
  /** A leg closed while the pair was blackholed; the other leg is closed at `restore()`. */
  brokenWhileHeld: boolean;
}

type Mode = 'forward' | 'blackhole' | 'refuse';

export interface TcpProxyOptions {
  /** Port to listen on (default 0: any free port). */
  listenPort?: number;
  /** One-way delay added to every chunk in both directions, in ms (default 0). */
  delayMs?: number;
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
   * One-way delay of every relayed chunk. Order is kept because Node runs timers of equal duration in insertion
   * order; change it only while no bytes flow, or chunks may overtake each other.
   */
  delayMs = 0;

  private constructor(private readonly server: Server, private targetPort: number, private readonly targetHost: string) {}

  static async start(targetPort: number, targetHost = '127.0.0.1', options: TcpProxyOptions = {}): Promise<TcpProxy> {
    const server = net.createServer();
    const proxy = new TcpProxy(server, targetPort, targetHost);
    proxy.delayMs = options.delayMs ?? 0;
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
    const pair: Pair = { client, upstream, brokenWhileHeld: false };
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
      if (this.delayMs > 0) {
        setTimeout(() => { if (!to.destroyed) to.write(chunk); }, this.delayMs);
        return;
      }
      if (!to.write(chunk)) from.pause();
    });
    to.on('drain', () => {
      if (!this.held(pair) && !(from === pair.upstream && this.repliesHeld)) from.resume();
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

  private held(pair: Pair): boolean {
    if (this.mode !== 'blackhole') return false;
    return this.heldSource === undefined || pair.client.remoteAddress === this.heldSource;
  }

  private destroyPair(pair: Pair): void {
    pair.client.destroy();
    pair.upstream.destroy();
    this.pairs.delete(pair);
  }
}
