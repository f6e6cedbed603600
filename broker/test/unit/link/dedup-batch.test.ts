import { DedupWindow, type Origin, type OriginReset } from '../../../src/link/dedup.js';
import type { AreaOp } from '../../../src/store/index.js';
import { MemoryArea } from './memory-area.js';

/** A MemoryArea whose writes wait until released, as a group commit in progress; `crash` forgets the waiting ones. */
class GatedArea extends MemoryArea {
  private held: Array<{ ops: AreaOp[]; resolve: () => void }> = [];
  gate = true;

  override async batch(ops: AreaOp[]): Promise<void> {
    if (!this.gate) return super.batch(ops);
    await new Promise<void>((resolve) => this.held.push({ ops, resolve }));
    await super.batch(ops);
  }

  get waiting(): number { return this.held.length; }

  release(): void {
    for (const w of this.held.splice(0)) w.resolve();
  }

  crash(): void {
    this.held = [];
  }
}

const origin = (epoch: string | null, agent = 'us/n1'): Origin => ({ cluster: 'us', agent, epoch });
const E1 = '1111111111111111';
const E2 = '2222222222222222';
const seqs = (from: number, to: number): number[] => [...Array(to - from + 1).keys()].map((i) => from + i);
const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('DedupWindow batches', () => {
  test('one mark write per batch; the next batch publishes while the previous mark commits; verdicts wait for their mark', async () => {
    const area = new GatedArea();
    const w = new DedupWindow(area);
    const published: number[] = [];
    const deliver = (list: number[]) => async (i: number): Promise<void> => { published.push(list[i]); };
    const settled: string[] = [];
    const a = seqs(1, 50);
    const b = seqs(51, 80);
    const first = w.processBatch(origin(E1), a, deliver(a)).then((v) => { settled.push('a'); return v; });
    const second = w.processBatch(origin(E1), b, deliver(b)).then((v) => { settled.push('b'); return v; });
    for (let i = 0; i < 5; i++) await tick();
    expect(published).toEqual(seqs(1, 80));
    expect(area.waiting).toBe(2);
    expect(settled).toEqual([]);
    area.release();
    expect(await first).toEqual({ delivered: 50, duplicates: 0 });
    expect(await second).toEqual({ delivered: 30, duplicates: 0 });
    expect(settled).toEqual(['a', 'b']);
    expect(area.writes).toBe(2);
    expect(await w.mark('us', 'us/n1')).toBe(80);
  });

  test('a resend overlapping the mark: the delivered part is recognised, the rest published, in order', async () => {
    const w = new DedupWindow(new MemoryArea());
    const published: number[] = [];
    await w.processBatch(origin(E1), seqs(1, 10), async (i) => { published.push(i + 1); });
    const resend = seqs(6, 15);
    expect(await w.processBatch(origin(E1), resend, async (i) => { published.push(resend[i]); })).toEqual({ delivered: 5, duplicates: 5 });
    expect(published).toEqual(seqs(1, 15));
  });

  test('a crash between the publishes and the mark commit: the resent batch is published again (at-least-once), never lost', async () => {
    const area = new GatedArea();
    area.gate = false;
    const before = new DedupWindow(area);
    await before.processBatch(origin(E1), seqs(1, 5), async () => undefined);
    area.gate = true;
    const published: number[] = [];
    const batch = seqs(6, 9);
    const unacknowledged = before.processBatch(origin(E1), batch, async (i) => { published.push(batch[i]); });
    let acknowledged = false;
    void unacknowledged.then(() => { acknowledged = true; });
    for (let i = 0; i < 5; i++) await tick();
    expect(published).toEqual(batch);
    expect(acknowledged).toBe(false); // the carrier is not acknowledged before the mark is durable
    area.crash();
    area.gate = false;
    const after = new DedupWindow(area);
    expect(await after.mark('us', 'us/n1')).toBe(5);
    const republished: number[] = [];
    expect(await after.processBatch(origin(E1), batch, async (i) => { republished.push(batch[i]); })).toEqual({ delivered: 4, duplicates: 0 });
    expect(republished).toEqual(batch);
    expect(await after.processBatch(origin(E1), batch, async () => { throw new Error('must not publish'); })).toEqual({ delivered: 0, duplicates: 4 });
  });

  test('a delivery failing mid-batch records what was published before it and rejects; the resend publishes it and those after it again', async () => {
    const area = new MemoryArea();
    const w = new DedupWindow(area);
    const published: number[] = [];
    const batch = seqs(1, 6);
    await expect(w.processBatch(origin(E1), batch, async (i) => {
      if (batch[i] === 4) throw new Error('publish failed at 4');
      published.push(batch[i]);
    })).rejects.toThrow('publish failed at 4');
    // The batch's publishes start together, so 5 and 6 went out with 4; the mark stops before the failure.
    expect(published).toEqual([1, 2, 3, 5, 6]);
    expect(await new DedupWindow(area).mark('us', 'us/n1')).toBe(3);
    await w.processBatch(origin(E1), batch, async (i) => { published.push(batch[i]); });
    expect(published).toEqual([1, 2, 3, 5, 6, 4, 5, 6]);
  });

  test('a batch\'s publishes start in order without waiting for each other; the mark waits for all of them', async () => {
    const area = new MemoryArea();
    const w = new DedupWindow(area);
    const started: number[] = [];
    const finish: (() => void)[] = [];
    const batch = seqs(1, 3);
    const verdict = w.processBatch(origin(E1), batch, (i) => new Promise<void>((resolve) => { started.push(batch[i]); finish.push(resolve); }));
    await new Promise((resolve) => setImmediate(resolve));
    expect(started).toEqual([1, 2, 3]);
    finish[2]();
    finish[1]();
    await new Promise((resolve) => setImmediate(resolve));
    expect(await new DedupWindow(area).mark('us', 'us/n1')).toBe(0);
    finish[0]();
    expect(await verdict).toEqual({ delivered: 3, duplicates: 0 });
    expect(await new DedupWindow(area).mark('us', 'us/n1')).toBe(3);
  });

  test('a new epoch of a known origin agent resets its window and is reported once; other agents keep theirs', async () => {
    const area = new MemoryArea();
    const w = new DedupWindow(area);
    const resets: OriginReset[] = [];
    const onReset = (r: OriginReset): void => { resets.push(r); };
    await w.processBatch(origin(E1), seqs(1, 5000), async () => undefined, onReset);
    await w.processBatch(origin(E1, 'us/n2'), seqs(1, 10), async () => undefined, onReset);
    const published: number[] = [];
    expect(await w.processBatch(origin(E2), seqs(1, 3), async (i) => { published.push(i + 1); }, onReset)).toEqual({ delivered: 3, duplicates: 0 });
    expect(published).toEqual([1, 2, 3]);
    expect(resets).toEqual([expect.objectContaining({ cluster: 'us', agent: 'us/n1', oldEpoch: E1, newEpoch: E2, oldMark: 5000 })]);
    // Persisted: after a restart of the receiver the new epoch is the known one, no second report.
    const restarted = new DedupWindow(area);
    expect(await restarted.processBatch(origin(E2), seqs(1, 4), async () => undefined, onReset)).toEqual({ delivered: 1, duplicates: 3 });
    expect(await restarted.processBatch(origin(E1, 'us/n2'), seqs(10, 11), async () => undefined, onReset)).toEqual({ delivered: 1, duplicates: 1 });
    expect(resets).toHaveLength(1);
  });

  test('a mark stored before epochs existed adopts the first epoch without a reset; the single-message format keeps the epoch', async () => {
    const area = new MemoryArea();
    const legacy = Buffer.alloc(8);
    legacy.writeBigUInt64BE(40n);
    area.data.set('us\u0000us/n1', legacy);
    const w = new DedupWindow(area);
    const resets: OriginReset[] = [];
    expect(await w.processBatch(origin(E1), seqs(39, 41), async () => undefined, (r) => resets.push(r))).toEqual({ delivered: 1, duplicates: 2 });
    expect(await w.process('us', 'us/n1', 41, async () => undefined)).toBe('duplicate');
    expect(await w.processBatch(origin(E1), [42], async () => undefined, (r) => resets.push(r))).toEqual({ delivered: 1, duplicates: 0 });
    expect(resets).toEqual([]);
  });

  test('a failed mark write rejects the batch; the resend, recognised from memory, writes the mark before it is acknowledged', async () => {
    const area = new MemoryArea();
    const w = new DedupWindow(area);
    area.failWrites = true;
    await expect(w.processBatch(origin(E1), seqs(1, 3), async () => undefined)).rejects.toThrow('disk full');
    area.failWrites = false;
    expect(await w.processBatch(origin(E1), seqs(1, 3), async () => { throw new Error('must not publish'); })).toEqual({ delivered: 0, duplicates: 3 });
    expect(await new DedupWindow(area).mark('us', 'us/n1')).toBe(3);
    const writes = area.writes;
    await w.processBatch(origin(E1), seqs(1, 3), async () => undefined);
    expect(area.writes).toBe(writes); // nothing new, nothing unsaved: no write
  });
});
