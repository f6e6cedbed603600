import type { Readable } from 'node:stream';
import type { Aedes, AedesPublishPacket } from 'aedes';
import type { Logger } from '../log/logger.js';

interface StoredWill extends AedesPublishPacket {
  clientId: string;
  brokerId: string;
}

interface WillPersistence {
  streamWill(brokers: Record<string, number>): Readable;
  delWill(client: { id: string; brokerId: string }): Promise<unknown>;
}

/**
 * Publishes the wills of clients that were connected to an earlier incarnation of this node: that incarnation
 * died (crash, kill -9) without disconnecting them, so their connections ended ungracefully [MQTT-3.1.2-8].
 * aedes would only find them after several heartbeat intervals; at start-up we know they are orphans.
 */
export async function publishOrphanedWills(aedes: Aedes, persistence: unknown, nodeName: string, logger: Logger): Promise<number> {
  const store = persistence as WillPersistence;
  const ownEarlierIncarnation = (brokerId: string): boolean => brokerId.startsWith(`${nodeName}.`) && brokerId !== aedes.id;
  let published = 0;
  for await (const will of store.streamWill({ [aedes.id]: Date.now() }) as AsyncIterable<StoredWill>) {
    if (!ownEarlierIncarnation(will.brokerId)) continue;
    await new Promise<void>((resolve, reject) => {
      aedes.publish({ cmd: 'publish', topic: will.topic, payload: will.payload, qos: will.qos, retain: will.retain, dup: false },
        (err?: Error) => (err ? reject(err) : resolve()));
    });
    await store.delWill({ id: will.clientId, brokerId: will.brokerId });
    published++;
  }
  if (published) logger.info({ published }, 'published wills of clients orphaned by an earlier incarnation');
  return published;
}
