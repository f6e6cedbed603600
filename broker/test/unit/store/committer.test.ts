import { pino } from 'pino';
import { GroupCommitter } from '../../../src/store/committer.js';
import type { KvEngine, KvOp } from '../../../src/store/engine.js';

/** An engine that records commits and can be made to fail or to hold a commit open. */
class RecordingEngine implements KvEngine {
  readonly commits: KvOp[][] = [];
  flushes = 0;
  failNext = false;
  private gate: Promise<void> | undefined;
  private openGate: (() => void) | undefined;

  hold(): void {
    this.gate = new Promise((resolve) => (this.openGate = resolve));
  }
  release(): void {
    this.openGate?.();
    this.gate = undefined;
  }
  async commit(ops: KvOp[]): Promise<void> {
    if (this.gate) await this.gate;
    if (this.failNext) {
      this.failNext = false;
      throw new Error('disk on fire');
    }
    this.commits.push(ops);
  }
  /** While set, fsyncs wait for it (to observe commits overlapping a running fsync). */
  flushGate: Promise<void> | undefined;
  failFlush = false;
  async flushed(): Promise<void> {
    this.flushes++;
    if (this.flushGate) await this.flushGate;
    if (this.failFlush) throw new Error('fsync: EIO');
  }
  async get(): Promise<Buffer | undefined> { return undefined; }
  async range(): Promise<[string, Buffer][]> { return []; }
  liveBytes(): number { return 0; }
  async close(): Promise<void> {}
}

const logger = pino({ level: 'silent' });
const put = (key: string, value = 'v'): KvOp => ({ type: 'put', key, value: Buffer.from(value) });

describe('GroupCommitter', () => {
  test('writes of one event-loop turn share one commit, with the configured sync flag', async () => {
    const engine = new RecordingEngine();
    const latencies: number[] = [];
    const committer = new GroupCommitter(engine, { sync: true, commitDelayMs: 0 }, logger, (s) => latencies.push(s));
    await Promise.all([committer.write([put('a')]), committer.write([put('b')]), committer.write([put('c')])]);
    expect(engine.commits).toHaveLength(1);
    expect(engine.commits[0].map((op) => op.key)).toEqual(['a', 'b', 'c']);
    expect(engine.flushes).toBe(1);
    expect(latencies).toHaveLength(1);
    expect(latencies[0]).toBeGreaterThanOrEqual(0);
  });

  test('commitDelayMs gathers writes issued across turns into one commit; relaxed does not wait for fsync', async () => {
    const engine = new RecordingEngine();
    const committer = new GroupCommitter(engine, { sync: false, commitDelayMs: 30 }, logger);
    const first = committer.write([put('a')]);
    await new Promise((resolve) => setTimeout(resolve, 5));
    const second = committer.write([put('b')]);
    await Promise.all([first, second]);
    expect(engine.flushes).toBe(0);
    expect(engine.commits).toHaveLength(1);
    expect(engine.commits[0].map((op) => op.key)).toEqual(['a', 'b']);
  });

  test('writes issued during a commit go in the next one, in order', async () => {
    const engine = new RecordingEngine();
    const committer = new GroupCommitter(engine, { sync: true, commitDelayMs: 0 }, logger);
    engine.hold();
    const first = committer.write([put('a')]);
    await new Promise((resolve) => setImmediate(resolve));
    const second = committer.write([put('b')]);
    const third = committer.write([put('c')]);
    engine.release();
    await Promise.all([first, second, third]);
    expect(engine.commits.map((c) => c.map((op) => op.key))).toEqual([['a'], ['b', 'c']]);
  });

  test('durable writers resolve only after the fsync, while the next batch commits meanwhile', async () => {
    const engine = new RecordingEngine();
    const committer = new GroupCommitter(engine, { sync: true, commitDelayMs: 0 }, logger);
    let openFlush = (): void => undefined;
    engine.flushGate = new Promise((resolve) => (openFlush = resolve));
    const settled: string[] = [];
    const first = committer.write([put('a')]).then(() => settled.push('a'));
    await new Promise((resolve) => setImmediate(resolve));
    const second = committer.write([put('b')]).then(() => settled.push('b'));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(engine.commits.map((c) => c[0].key)).toEqual(['a', 'b']);
    expect(settled).toEqual([]);
    openFlush();
    await Promise.all([first, second]);
    expect(settled).toEqual(['a', 'b']);
  });

  test('a failed fsync rejects the writers of that commit', async () => {
    const engine = new RecordingEngine();
    const committer = new GroupCommitter(engine, { sync: true, commitDelayMs: 0 }, logger);
    engine.failFlush = true;
    await expect(committer.write([put('a')])).rejects.toThrow('store commit of 1 operations failed: fsync: EIO');
  });

  test('uncommitted values are visible through pending(), and gone once committed', async () => {
    const engine = new RecordingEngine();
    const committer = new GroupCommitter(engine, { sync: true, commitDelayMs: 0 }, logger);
    const written = committer.write([put('a', 'one'), { type: 'del', key: 'b' }]);
    expect(committer.pending('a')?.toString()).toBe('one');
    expect(committer.pending('b')).toBeNull();
    expect(committer.pending('c')).toBeUndefined();
    expect(committer.pendingWithPrefix('a').map(([key]) => key)).toEqual(['a']);
    await written;
    expect(committer.pending('a')).toBeUndefined();
  });

  test('a failed commit rejects its writers with context and the next commit proceeds', async () => {
    const engine = new RecordingEngine();
    const committer = new GroupCommitter(engine, { sync: true, commitDelayMs: 0 }, logger);
    engine.failNext = true;
    await expect(committer.write([put('a')])).rejects.toThrow('store commit of 1 operations failed: disk on fire');
    expect(committer.pending('a')).toBeUndefined();
    await committer.write([put('b')]);
    expect(engine.commits.map((c) => c[0].key)).toEqual(['b']);
  });

  test('close() commits what is queued, even inside a delay window, then refuses writes', async () => {
    const engine = new RecordingEngine();
    const committer = new GroupCommitter(engine, { sync: true, commitDelayMs: 10_000 }, logger);
    const pending = committer.write([put('a')]);
    const started = Date.now();
    await committer.close();
    await pending;
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(engine.commits).toHaveLength(1);
    await expect(committer.write([put('b')])).rejects.toThrow('store is closed');
    await committer.close();
  });
});
