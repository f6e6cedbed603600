import { rmSync } from 'node:fs';
import { sidecarClusterIncarnation } from '../../../src/link/sidecar.js';
import { storeFixture } from '../store/fixture.js';

const stores = storeFixture('meridian-sidecar-incarnation-', { maxSizeMb: 64, maxQueuedMessages: 100 });

describe('sidecar cluster incarnation', () => {
  it('grows at every start of one store, and a wiped store never repeats one of the old store', async () => {
    const dir = stores.freshDir();
    let store = await stores.open(dir);
    const first = await sidecarClusterIncarnation(store.area('cluster-incarnation'), store.incarnation, 1_000_000);
    expect(first).toBe(1_000_000 + store.incarnation);
    store = await stores.reopen(store, dir);
    // The base is the store's, not the clock's: a later clock does not move it.
    const second = await sidecarClusterIncarnation(store.area('cluster-incarnation'), store.incarnation, 5_000_000);
    expect(second).toBe(first + 1);
    await store.close();
    rmSync(dir, { recursive: true, force: true });
    const wiped = await stores.open(dir);
    expect(wiped.incarnation).toBe(1);
    const third = await sidecarClusterIncarnation(wiped.area('cluster-incarnation'), wiped.incarnation, 1_000_002);
    expect(third).toBeGreaterThan(second);
  });
});
