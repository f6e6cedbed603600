import { rmSync } from 'node:fs';
import { storeFixture } from './fixture.js';

const fixture = storeFixture('meridian-store-epoch-', { maxSizeMb: 64, maxQueuedMessages: 100 });

describe('store epoch', () => {
  test('a new store gets a random 64-bit epoch; reopening keeps it; a deleted data directory gets another', async () => {
    const dir = fixture.freshDir();
    const first = await fixture.open(dir);
    expect(first.epoch).toMatch(/^[0-9a-f]{16}$/);
    expect(first.created).toBe(true);
    const again = await fixture.reopen(first, dir);
    expect(again.epoch).toBe(first.epoch);
    expect(again.created).toBe(false);
    expect(again.incarnation).toBe(first.incarnation + 1);
    await again.close();
    rmSync(dir, { recursive: true, force: true });
    const fresh = await fixture.open(dir);
    expect(fresh.created).toBe(true);
    expect(fresh.incarnation).toBe(1);
    expect(fresh.epoch).not.toBe(first.epoch);
    expect((await fixture.open(fixture.freshDir())).epoch).not.toBe(fresh.epoch);
  });
});
