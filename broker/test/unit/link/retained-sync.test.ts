import { createLogger } from '../../../src/log/logger.js';
import { RETAINED_SYNC_CLIENT_ID, RetainedSync, scanRetained, SYNC_TWIN_MS, type LinkedOrigin, type RetainedCopy } from '../../../src/link/retained-sync.js';
import type { LinkMessage } from '../../../src/link/queue.js';
import { MemoryArea } from './memory-area.js';

const logger = createLogger('silent');

/** A node's retained store as a plain map (what the agent reads through `scanRetained`). */
function store(entries: Array<[string, string, 0 | 1 | 2]>): Map<string, RetainedCopy> {
  return new Map(entries.map(([topic, payload, qos]) => [topic, { topic, payload: Buffer.from(payload), qos }]));
}

function open(area: MemoryArea, retained?: Map<string, RetainedCopy>): Promise<RetainedSync> {
  const source = retained && scanRetained(() => [...retained.keys()], (t) => retained.get(t));
  return RetainedSync.open(area, source, logger);
}

const linked = (topic: string, payload: string, synced = false, qos: 0 | 1 | 2 = 1): LinkMessage => ({
  topic, payload: Buffer.from(payload), qos, retain: true, publisherClientId: synced ? RETAINED_SYNC_CLIENT_ID : 'publisher', timestamp: 0,
});

describe('RetainedSync (retained messages across links)', () => {
  test('a new route gets the matching local retained messages, retain flag set, marked as synced; $ topics and empty payloads never', async () => {
    const retained = store([['a/1', 'x', 1], ['a/2', 'y', 0], ['b/1', 'z', 1], ['$SYS/a', 's', 0], ['a/3', '', 0]]);
    const sync = await open(new MemoryArea(), retained);
    const out = sync.forNewRoute('eu', '+/1');
    expect(out.map((m) => m.topic).sort()).toEqual(['a/1', 'b/1']);
    expect(out.every((m) => m.retain && m.publisherClientId === RETAINED_SYNC_CLIENT_ID)).toBe(true);
    expect(sync.forNewRoute('eu', '#').map((m) => `${m.topic}:${m.qos}`).sort()).toEqual(['a/1:1', 'a/2:0', 'b/1:1']);
    expect(sync.counters.sent).toBe(5);
  });

  test('a retained message that came over a link is never sent (back or onwards), also after a restart', async () => {
    const area = new MemoryArea();
    const retained = store([['a/local', 'mine', 1]]);
    const sync = await open(area, retained);
    expect(await sync.admit('eu', linked('a/remote', 'theirs'))).toBe(true);
    retained.set('a/remote', { topic: 'a/remote', payload: Buffer.from('theirs'), qos: 1 });
    expect(sync.forNewRoute('eu', 'a/#').map((m) => m.topic)).toEqual(['a/local']);
    expect(sync.counters.skippedLinked).toBe(1);

    const restarted = await open(area, retained);
    expect(restarted.linkedTopics).toBe(1);
    expect(restarted.forNewRoute('eu', 'a/#').map((m) => m.topic)).toEqual(['a/local']);
  });

  test('a local publish or a different payload on the topic makes it local again; an empty linked payload drops the record', async () => {
    const retained = store([]);
    const sync = await open(new MemoryArea(), retained);
    await sync.admit('eu', linked('t/1', 'v1'));
    await sync.admit('eu', linked('t/2', 'v1'));
    await sync.admit('eu', linked('t/3', 'v1'));
    // t/1: a local client published over it (the agent's node saw it); t/2: replaced on another node with other bytes.
    sync.localPublish('t/1');
    retained.set('t/1', { topic: 't/1', payload: Buffer.from('v1'), qos: 1 });
    retained.set('t/2', { topic: 't/2', payload: Buffer.from('local'), qos: 1 });
    retained.set('t/3', { topic: 't/3', payload: Buffer.from('v1'), qos: 1 });
    expect(sync.forNewRoute('eu', 't/+').map((m) => m.topic).sort()).toEqual(['t/1', 't/2']);
    expect(await sync.admit('eu', linked('t/3', ''))).toBe(true);
    expect(sync.linkedTopics).toBe(1);
  });

  test('a synced copy identical to the retained message held here is not published again; live copies always are', async () => {
    const retained = store([['k', 'same', 1]]);
    const sync = await open(new MemoryArea(), retained);
    expect(await sync.admit('eu', linked('k', 'same', true))).toBe(false);
    expect(sync.counters.suppressed).toBe(1);
    // The identical copy held here is local: it stays local (sent to links), not recorded as the link's.
    expect(sync.forNewRoute('eu', 'k').map((m) => m.topic)).toEqual(['k']);
    expect(await sync.admit('eu', linked('k', 'same', false))).toBe(true);
    // A synced deletion of a topic not held here is nothing to do.
    expect(await sync.admit('eu', linked('gone', '', true))).toBe(false);
    expect(sync.counters.suppressed).toBe(2);
  });

  test('a synced copy replaces only a copy of the same link: a local retained message or another link\'s is kept', async () => {
    const retained = store([['local', 'mine', 1]]);
    const sync = await open(new MemoryArea(), retained);
    expect(await sync.admit('eu', linked('local', 'theirs', true))).toBe(false);
    expect(await sync.admit('eu', linked('local', '', true))).toBe(false);
    expect(await sync.admit('ap', linked('t', 'from ap'))).toBe(true);
    retained.set('t', { topic: 't', payload: Buffer.from('from ap'), qos: 1 });
    expect(await sync.admit('eu', linked('t', 'from eu', true))).toBe(false);
    expect(sync.counters.kept).toBe(3);
    // A live publish from a link is a publish: it applies.
    expect(await sync.admit('eu', linked('local', 'live from eu'))).toBe(true);
    // The same link's older copy is replaced by its synced update.
    retained.set('local', { topic: 'local', payload: Buffer.from('live from eu'), qos: 1 });
    expect(await sync.admit('eu', linked('local', 'newer', true))).toBe(true);
  });

  test('a topic sent to a link and deleted while the remote had no route gets a deletion at the next route; not twice', async () => {
    const area = new MemoryArea();
    const retained = store([['s/1', 'a', 1], ['s/2', 'b', 1]]);
    const sync = await open(area, retained);
    expect(sync.forNewRoute('eu', 's/#')).toHaveLength(2);
    retained.delete('s/1');
    // A live deletion that crossed the link needs no later tombstone.
    retained.delete('s/2');
    sync.queued('eu', linked('s/2', ''));
    await sync.flushed();
    const restarted = await open(area, retained);
    const again = restarted.forNewRoute('eu', 's/#');
    expect(again.map((m) => `${m.topic}=${m.payload.toString()}:${m.retain}`)).toEqual(['s/1=:true']);
    expect(restarted.counters.tombstones).toBe(1);
    expect(restarted.forNewRoute('eu', 's/#')).toEqual([]);
    // Per link: another link never got s/1, so it gets no deletion.
    expect(restarted.forNewRoute('ap', 's/#')).toEqual([]);
  });

  test('a live publish of the message the sync just queued is its twin: not queued again for that link, once, only for a while', async () => {
    const retained = store([['tw/1', 'v', 1], ['tw/2', 'w', 1]]);
    const sync = await open(new MemoryArea(), retained);
    sync.forNewRoute('eu', 'tw/#');
    expect(sync.isSyncedTwin('eu', linked('tw/1', 'v'))).toBe(true);
    expect(sync.isSyncedTwin('eu', linked('tw/1', 'v'))).toBe(false);
    expect(sync.isSyncedTwin('ap', linked('tw/2', 'w'))).toBe(false);
    expect(sync.isSyncedTwin('eu', linked('tw/2', 'newer'))).toBe(false);
    expect(sync.isSyncedTwin('eu', { ...linked('tw/2', 'w'), retain: false })).toBe(false);
    expect(sync.counters.twins).toBe(1);
    await new Promise((r) => setTimeout(r, SYNC_TWIN_MS + 100));
    expect(sync.isSyncedTwin('eu', linked('tw/2', 'w'))).toBe(false);
  });

  test('without a retained store (sidecar) nothing is sent and nothing suppressed', async () => {
    const sync = await open(new MemoryArea());
    expect(sync.forNewRoute('eu', '#')).toEqual([]);
    expect(await sync.admit('eu', linked('k', 'same', true))).toBe(true);
  });

  test('a failed record write is logged, not thrown: the message is still published', async () => {
    const area = new MemoryArea();
    area.failWrites = true;
    const sync = await open(area, store([]));
    await expect(sync.admit('eu', linked('k', 'v'))).resolves.toBe(true);
  });

  test('a live retained publish queued for the link after the route came and before the sync read supersedes the synced copy', async () => {
    // A replica that lags the live copies (a sidecar's): it still holds v1 when the live v2 was queued.
    const retained = store([['h/1', 'v1', 1], ['h/2', 'w1', 1]]);
    const sync = await open(new MemoryArea(), retained);
    sync.beginSync('eu', 'h/#');
    sync.queued('eu', linked('h/1', 'v2'));
    sync.queued('us', linked('h/2', 'w2')); // another link: no effect on eu
    sync.queued('eu', linked('x/1', 'other')); // not under the filter
    expect(sync.forNewRoute('eu', 'h/#').map((m) => `${m.topic}=${m.payload}`)).toEqual(['h/2=w1']);
    expect(sync.counters.superseded).toBe(1);
    // Once read, the pending sync is over: the next route on the same filter syncs everything again.
    sync.beginSync('eu', 'h/#');
    expect(sync.forNewRoute('eu', 'h/#').map((m) => m.topic).sort()).toEqual(['h/1', 'h/2']);
  });

  test('an origin told by another agent of the region keeps the message from being sent onwards; admit tells the others', async () => {
    const area = new MemoryArea();
    const retained = store([['r/1', 'from c', 1]]);
    const other = await open(area, retained);
    const told: Array<[string, LinkedOrigin | undefined]> = [];
    const receiving = await open(new MemoryArea(), store([]));
    receiving.onOrigin = (topic, origin) => told.push([topic, origin]);
    await receiving.admit('c', linked('r/1', 'from c'));
    await receiving.admit('c', linked('r/2', ''));
    expect(told.map(([topic, origin]) => [topic, origin?.link])).toEqual([['r/1', 'c'], ['r/2', undefined]]);
    // The agent holding another link learns it: its copy of the region's retained messages holds r/1, never sent.
    await other.adoptOrigin('r/1', told[0][1]);
    expect(other.forNewRoute('d', 'r/#')).toEqual([]);
    expect(other.counters.skippedLinked).toBe(1);
    expect((await open(area, retained)).linkedTopics).toBe(1);
  });
});
