import { DedupWindow } from '../../../src/link/dedup.js';
import { MemoryArea } from './memory-area.js';

describe('DedupWindow', () => {
  test('delivers each (cluster, agent, sequence) once, across a restart of the receiver', async () => {
    const area = new MemoryArea();
    const delivered: string[] = [];
    const deliver = (what: string) => async (): Promise<void> => { delivered.push(what); };
    const w1 = new DedupWindow(area);
    expect(await w1.process('eu', 'eu/n1', 1, deliver('eu1'))).toBe('delivered');
    expect(await w1.process('eu', 'eu/n1', 2, deliver('eu2'))).toBe('delivered');
    expect(await w1.process('eu', 'eu/n1', 1, deliver('eu1 again'))).toBe('duplicate');
    expect(await w1.process('eu', 'eu/n2', 1, deliver('n2-1'))).toBe('delivered');
    expect(await w1.process('ap', 'ap/n1', 1, deliver('ap1'))).toBe('delivered');
    const w2 = new DedupWindow(area);
    expect(await w2.process('eu', 'eu/n1', 2, deliver('eu2 again'))).toBe('duplicate');
    expect(await w2.process('eu', 'eu/n1', 3, deliver('eu3'))).toBe('delivered');
    expect(delivered).toEqual(['eu1', 'eu2', 'n2-1', 'ap1', 'eu3']);
    expect(await w2.mark('eu', 'eu/n1')).toBe(3);
  });

  test('messages of one origin are processed one at a time, in call order', async () => {
    const w = new DedupWindow(new MemoryArea());
    const events: string[] = [];
    const slow = (seq: number, ms: number) => async (): Promise<void> => {
      events.push(`start ${seq}`);
      await new Promise((r) => setTimeout(r, ms));
      events.push(`end ${seq}`);
    };
    const results = await Promise.all([w.process('eu', 'a', 1, slow(1, 30)), w.process('eu', 'a', 2, slow(2, 1)), w.process('eu', 'a', 1, slow(99, 1))]);
    expect(results).toEqual(['delivered', 'delivered', 'duplicate']);
    expect(events).toEqual(['start 1', 'end 1', 'start 2', 'end 2']);
  });

  test('a failed delivery is not recorded: the resend is delivered', async () => {
    const area = new MemoryArea();
    const w = new DedupWindow(area);
    await expect(w.process('eu', 'a', 1, async () => { throw new Error('publish failed'); })).rejects.toThrow('publish failed');
    let delivered = 0;
    expect(await w.process('eu', 'a', 1, async () => { delivered++; })).toBe('delivered');
    expect(delivered).toBe(1);
  });

  test('a gap in sequences is counted', async () => {
    const w = new DedupWindow(new MemoryArea());
    await w.process('eu', 'a', 1, async () => undefined);
    await w.process('eu', 'a', 5, async () => undefined);
    expect(w.gaps).toBe(1);
  });
});
