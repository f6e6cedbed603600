import { lookup } from 'node:dns/promises';
import type { Logger } from '../log/logger.js';

export type ResolveHost = (name: string) => Promise<string[]>;

export interface DiscoveryOptions {
  seeds: string[];
  /** DNS name of a headless Service; every address it resolves to is a node listening on `clusterPort`. */
  dnsName?: string;
  clusterPort: number;
  intervalMs: number;
  /** This node's own advertised address, never reported as a peer. */
  self: string;
  logger: Logger;
  resolve?: ResolveHost;
}

/** All A/AAAA records, through the system resolver (so /etc/hosts and the cluster DNS both work). */
export const resolveAllAddresses: ResolveHost = async (name) => (await lookup(name, { all: true })).map((a) => a.address);

export function formatAddress(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Finds the cluster addresses of other nodes: the static seeds plus, with DNS discovery, whatever the name
 * resolves to now — re-resolved every interval, so pods that come and go are followed. A failed lookup keeps the
 * last known set and is logged (a headless Service with no ready pods yet is normal during a rollout).
 */
export class Discovery {
  private timer?: NodeJS.Timeout;
  private lastDnsAddresses: string[] = [];

  constructor(private readonly options: DiscoveryOptions, private readonly onPeers: (addresses: string[]) => void) {}

  async start(): Promise<void> {
    await this.refresh();
    if (this.options.dnsName) {
      this.timer = setInterval(() => void this.refresh(), this.options.intervalMs);
      this.timer.unref();
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  async refresh(): Promise<string[]> {
    const { options } = this;
    if (options.dnsName) {
      try {
        const hosts = await (options.resolve ?? resolveAllAddresses)(options.dnsName);
        this.lastDnsAddresses = hosts.map((host) => formatAddress(host, options.clusterPort));
      } catch (err) {
        options.logger.warn({ name: options.dnsName, err: (err as Error).message }, 'cluster discovery: DNS lookup failed; keeping the last known nodes');
      }
    }
    const peers = [...new Set([...options.seeds, ...this.lastDnsAddresses])].filter((a) => a !== options.self).sort();
    this.onPeers(peers);
    return peers;
  }
}
