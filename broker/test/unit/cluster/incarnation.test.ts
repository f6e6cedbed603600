import { rmSync } from 'node:fs';
import { CLUSTER_INCARNATION_AREA, clusterIncarnation } from '../../../src/cluster/incarnation.js';
import { decodeForwarded, encodeForwarded, type ForwardedMessage } from '../../../src/cluster/forward-codec.js';
import { decodeFrame, encodeFrame, PROTOCOL_VERSION } from '../../../src/cluster/transport/codec.js';
import { sidecarClusterIncarnation } from '../../../src/link/sidecar.js';
import { decodeMessage, encodeMessage } from '../../../src/routesync/codec.js';
import type { SyncMessage } from '../../../src/routesync/messages.js';
import { storeFixture } from '../store/fixture.js';

const stores = storeFixture('meridian-cluster-incarnation-', { maxSizeMb: 64, maxQueuedMessages: 100 });
/** A clock reading of today (ms): the size of a real cluster incarnation. */
const NOW = 1_795_327_632_115;

describe('cluster incarnation (store clock base + store incarnation)', () => {
  it('keeps a base a sidecar stored earlier, grows per start, and a wiped store starts above the old one', async () => {
    const dir = stores.freshDir();
    let store = await stores.open(dir);
    const bySidecar = await sidecarClusterIncarnation(store.area(CLUSTER_INCARNATION_AREA), store.incarnation, NOW);
    store = await stores.reopen(store, dir);
    store = await stores.reopen(store, dir);
    const byNode = await clusterIncarnation(store.area(CLUSTER_INCARNATION_AREA), store.incarnation, NOW + 60_000);
    expect(byNode).toBe(bySidecar + 2);
    await store.close();
    rmSync(dir, { recursive: true, force: true });
    const wiped = await stores.open(dir);
    expect(wiped.incarnation).toBe(1);
    expect(await clusterIncarnation(wiped.area(CLUSTER_INCARNATION_AREA), wiped.incarnation, NOW + 1_000)).toBeGreaterThan(byNode);
  });

  it('refuses a value above 2^53 - 1 with the numbers in the message', async () => {
    const store = await stores.open(stores.freshDir());
    await expect(clusterIncarnation(store.area(CLUSTER_INCARNATION_AREA), 2, Number.MAX_SAFE_INTEGER - 1))
      .rejects.toThrow(`cluster incarnation ${Number.MAX_SAFE_INTEGER - 1} + 2 is not a safe integer`);
  });

  it('fits every wire encoding that carries it (route sync, transport handshake, forwarded copies)', () => {
    const incarnation = NOW + 4;
    for (const value of [incarnation, Number.MAX_SAFE_INTEGER]) {
      const sync: SyncMessage[] = [
        { type: 'init', protocol: 1, cluster: 'eu-west', actor: 'repl-1', incarnation: value, role: 'replicant', conn: 3 },
        { type: 'heartbeat', incarnation: value, conn: 3, afterSeq: 9, lanes: [{ actor: 'repl-1', incarnation: value, version: 7 }] },
      ];
      for (const message of sync) expect(decodeMessage(encodeMessage(message))).toEqual(message);
      const identity = { clusterName: 'eu-west', nodeId: 'repl-1', role: 'replicant' as const, incarnation: value, address: '127.0.0.1:4370' };
      const hello = { type: 'hello' as const, version: PROTOCOL_VERSION, identity, nonce: Buffer.alloc(32, 7) };
      expect(decodeFrame(encodeFrame(hello))).toMatchObject({ identity });
      const copy: ForwardedMessage = {
        topic: 't/1', payload: Buffer.from('x'), qos: 1, retain: false, publisherClientId: 'c', timestamp: 1,
        copy: { incarnation: value, seq: 12, attempt: 0 },
      };
      expect(decodeForwarded(encodeForwarded(copy)).copy).toEqual(copy.copy);
    }
  });
});
