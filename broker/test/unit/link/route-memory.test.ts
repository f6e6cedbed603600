import { createLogger } from '../../../src/log/logger.js';
import { createHash } from 'node:crypto';
import { filterKey, RemoteRouteMemory } from '../../../src/link/route-memory.js';
import { MemoryArea } from './memory-area.js';

const logger = createLogger('silent');

async function open(area: MemoryArea): Promise<{ memory: RemoteRouteMemory; region: string[] }> {
  const region: string[] = [];
  const memory = await RemoteRouteMemory.open(area, (op, filter) => region.push(`${op} ${filter}`), logger);
  return { memory, region };
}

describe('RemoteRouteMemory (a link\'s remote filters across restarts)', () => {
  test('live filters are persisted and restored at the next start: they match and are in the region at once', async () => {
    const area = new MemoryArea();
    const first = await open(area);
    first.memory.liveChanged('add', 'orders/#');
    first.memory.liveChanged('add', 'alerts/+');
    first.memory.liveChanged('delete', 'alerts/+');
    await first.memory.flushed();
    expect(first.region).toEqual(['add orders/#', 'add alerts/+', 'delete alerts/+']);

    const second = await open(area);
    expect(second.region).toEqual(['add orders/#']);
    expect(second.memory.restoredCount).toBe(1);
    expect(second.memory.matches('orders/7')).toBe(true);
    expect(second.memory.matches('alerts/1')).toBe(false);
  });

  test('a restored filter the remote confirms stays in the region once; the live routes decide from then on', async () => {
    const area = new MemoryArea();
    const first = await open(area);
    first.memory.liveChanged('add', 'orders/#');
    await first.memory.flushed();
    const { memory, region } = await open(area);
    memory.liveChanged('add', 'orders/#');
    expect(region).toEqual(['add orders/#']);
    expect(memory.restoredCount).toBe(0);
    memory.liveChanged('delete', 'orders/#');
    await memory.flushed();
    expect(region).toEqual(['add orders/#', 'delete orders/#']);
    expect(area.data.size).toBe(0);
  });

  test('restored filters not confirmed within the TTL leave the region and the store', async () => {
    const area = new MemoryArea();
    const first = await open(area);
    first.memory.liveChanged('add', 'a/#');
    first.memory.liveChanged('add', 'b/#');
    await first.memory.flushed();
    const { memory, region } = await open(area);
    memory.liveChanged('add', 'a/#');
    memory.expireRestored();
    await memory.flushed();
    expect(region.slice(0, 2).sort()).toEqual(['add a/#', 'add b/#']); // restored in key order
    expect(region.slice(2)).toEqual(['delete b/#']);
    expect(memory.matches('b/1')).toBe(false);
    expect([...area.data.values()].map((v) => v.toString())).toEqual(['a/#']);
  });

  test('withdraw (link stopped) takes every route out of the region but keeps what is persisted', async () => {
    const area = new MemoryArea();
    const first = await open(area);
    first.memory.liveChanged('add', 'a/#');
    await first.memory.flushed();
    const { memory, region } = await open(area);
    memory.liveChanged('add', 'c/+');
    memory.withdraw();
    await memory.flushed();
    expect(region.sort()).toEqual(['add a/#', 'add c/+', 'delete a/#', 'delete c/+']);
    expect(area.data.size).toBe(2);
  });

  test('short filters are their own store key, long ones a hash; entries of older stores (bare sha256 keys) are moved at open', async () => {
    const area = new MemoryArea();
    const long = `x/${'y'.repeat(300)}/#`;
    const legacyKey = (filter: string): string => createHash('sha256').update(filter).digest('base64url');
    await area.batch([{ type: 'put', key: legacyKey('old/#'), value: Buffer.from('old/#') }, { type: 'put', key: legacyKey(long), value: Buffer.from(long) }]);
    const { memory, region } = await open(area);
    expect(region.sort()).toEqual([`add ${long}`, 'add old/#'].sort());
    expect([...area.data.keys()].sort()).toEqual([filterKey(long), filterKey('old/#')].sort());
    expect(filterKey('old/#')).toBe('f/old/#');
    expect(filterKey(long)).toMatch(/^h\/[A-Za-z0-9_-]{43}$/);
    // The moved entries are the ones a later change updates.
    memory.liveChanged('add', 'old/#');
    memory.liveChanged('delete', 'old/#');
    await memory.flushed();
    expect([...area.data.values()].map((v) => v.toString())).toEqual([long]);
  });

  test('a failed write is logged, not thrown; later writes still happen', async () => {
    const area = new MemoryArea();
    const { memory } = await open(area);
    area.failWrites = true;
    memory.liveChanged('add', 'x');
    await memory.flushed();
    area.failWrites = false;
    memory.liveChanged('add', 'y');
    await memory.flushed();
    expect([...area.data.values()].map((v) => v.toString())).toEqual(['y']);
  });
});
