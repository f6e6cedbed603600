import type { BrokerNode } from './node.js';

/**
 * Publishes broker statistics under `$SYS/<node>/...` every interval, retained, like mosquitto's `$SYS/broker/...`.
 * Only superusers may subscribe to `$SYS` (see mqtt/security.ts).
 */
export class SysTopicPublisher {
  private readonly timer?: NodeJS.Timeout;

  constructor(private readonly node: BrokerNode, intervalSeconds: number) {
    if (intervalSeconds > 0) {
      this.timer = setInterval(() => void this.publish(), intervalSeconds * 1000);
      this.timer.unref();
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  private async publish(): Promise<void> {
    const prefix = `$SYS/${this.node.config.node.name}`;
    const values: Record<string, string> = {
      'uptime': String(Math.round((Date.now() - this.node.startedAt.getTime()) / 1000)),
      'clients/connected': String(this.node.connectionCount),
      'version': `meridian ${process.env.npm_package_version ?? '0.1.0'}`,
    };
    for (const [name, value] of Object.entries(values)) {
      this.node.aedes.publish({ cmd: 'publish', topic: `${prefix}/${name}`, payload: Buffer.from(value), qos: 0, retain: true, dup: false }, () => {});
    }
  }
}
