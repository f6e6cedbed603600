import { InboundStream, OutboundStream, ProtocolViolation, type OutboundMessage } from '../../../../src/cluster/transport/delivery.js';
import { Backoff } from '../../../../src/cluster/transport/backoff.js';

interface Tracked {
  message: OutboundMessage;
  state: 'pending' | 'acked' | 'failed';
  error?: Error;
}

function track(stream: OutboundStream, payload: string | Buffer): Tracked {
  const tracked = {} as Tracked;
  tracked.state = 'pending';
  tracked.message = {
    channel: 1, payload: Buffer.isBuffer(payload) ? payload : Buffer.from(payload), seq: 0, transmissions: 0,
    resolve: () => { tracked.state = 'acked'; },
    reject: (err) => { tracked.state = 'failed'; tracked.error = err; },
  };
  stream.enqueue(tracked.message);
  return tracked;
}

function transmitAll(stream: OutboundStream): number[] {
  const seqs: number[] = [];
  for (let m = stream.nextToTransmit(); m; m = stream.nextToTransmit()) seqs.push(m.seq);
  return seqs;
}

describe('outbound stream', () => {
  test('sequence numbers start at 1 and a cumulative ack settles everything up to it, in order', () => {
    const out = new OutboundStream({ maxMessages: 100, maxBytes: 1 << 20 });
    const sent = ['a', 'b', 'c'].map((p) => track(out, p));
    expect(transmitAll(out)).toEqual([1, 2, 3]);
    expect(out.acknowledge(2)).toBe(2);
    expect(sent.map((s) => s.state)).toEqual(['acked', 'acked', 'pending']);
    expect(out.acknowledge(1)).toBe(0); // stale ack
  });

  test('the window holds at most maxMessages and maxBytes; the rest waits without a sequence number', () => {
    const out = new OutboundStream({ maxMessages: 2, maxBytes: 10 });
    const a = track(out, '12345');
    const b = track(out, '12345');
    const c = track(out, 'x');
    expect([a.message.seq, b.message.seq, c.message.seq]).toEqual([1, 2, 0]);
    expect(out.hasRoom).toBe(false);
    expect(out.waitingMessages).toBe(1);
    transmitAll(out);
    out.acknowledge(1);
    expect(c.message.seq).toBe(3);
    expect(out.unackedBytes).toBe(6);
  });

  test('a message bigger than the byte window still goes out alone into an empty window', () => {
    const out = new OutboundStream({ maxMessages: 10, maxBytes: 4 });
    const big = track(out, Buffer.alloc(100));
    const next = track(out, 'x');
    expect(big.message.seq).toBe(1);
    expect(next.message.seq).toBe(0);
  });

  test('acknowledging what was never sent is a protocol violation', () => {
    const out = new OutboundStream({ maxMessages: 10, maxBytes: 100 });
    track(out, 'a');
    expect(() => out.acknowledge(2)).toThrow(ProtocolViolation);
  });

  test('resuming with a peer that holds the stream skips what it received and resends the rest', () => {
    const out = new OutboundStream({ maxMessages: 10, maxBytes: 100 });
    const sent = ['a', 'b', 'c', 'd'].map((p) => track(out, p));
    transmitAll(out);
    expect(out.open(true, 2)).toEqual({ resumed: true });
    expect(sent.map((s) => s.state)).toEqual(['acked', 'acked', 'pending', 'pending']);
    expect(transmitAll(out)).toEqual([3, 4]);
    expect(out.resends).toBe(2);
  });

  test('a peer that lost the stream makes every pending send fail, and numbering restarts at 1', () => {
    const out = new OutboundStream({ maxMessages: 1, maxBytes: 100 });
    const sent = ['a', 'b'].map((p) => track(out, p));
    transmitAll(out);
    const outcome = out.open(false, 0);
    expect(outcome.resumed).toBe(false);
    expect(!outcome.resumed && outcome.failed.map((m) => m.payload.toString())).toEqual(['a', 'b']);
    expect(sent.every((s) => s.state === 'pending')).toBe(true); // the link rejects them, not the stream
    const fresh = track(out, 'c');
    expect(fresh.message.seq).toBe(1);
  });

  test('messages queued before the very first connection are kept and sent when the first session opens', () => {
    const out = new OutboundStream({ maxMessages: 10, maxBytes: 100 });
    track(out, 'a');
    track(out, 'b');
    expect(out.open(false, 0)).toEqual({ resumed: false, failed: [] });
    expect(transmitAll(out)).toEqual([1, 2]);
  });

  test('an ack above what this connection carried, but within what was sent before, skips the resend', () => {
    const out = new OutboundStream({ maxMessages: 10, maxBytes: 100 });
    ['a', 'b', 'c'].forEach((p) => track(out, p));
    transmitAll(out);
    out.open(true, 0);
    out.acknowledge(2);
    expect(transmitAll(out)).toEqual([3]);
  });
});

describe('inbound stream', () => {
  test('delivers in order, drops duplicates, reports gaps', () => {
    const inb = new InboundStream();
    inb.begin(77);
    expect(inb.accept(1)).toBe('deliver');
    expect(inb.accept(1)).toBe('duplicate');
    expect(inb.accept(3)).toBe('gap');
    expect(inb.accept(2)).toBe('deliver');
  });

  test('resumes the same session, restarts on a different one', () => {
    const inb = new InboundStream();
    inb.begin(5);
    inb.accept(1);
    inb.delivered(1, false);
    expect(inb.begin(5)).toBe('resumed');
    expect(inb.accept(1)).toBe('duplicate');
    expect(inb.begin(6)).toBe('started');
    expect(inb.accept(1)).toBe('deliver');
  });

  test('acknowledgements wait for deferred handling and never overtake an unfinished message', () => {
    const inb = new InboundStream();
    inb.begin(1);
    inb.accept(1);
    const finish1 = inb.delivered(1, true) as () => void;
    inb.accept(2);
    expect(inb.delivered(2, false)).toBeUndefined();
    inb.accept(3);
    const finish3 = inb.delivered(3, true) as () => void;
    expect(inb.ackDue()).toBeUndefined();
    finish3();
    expect(inb.ackDue()).toBeUndefined();
    finish1();
    expect(inb.ackDue()).toBe(3);
    expect(inb.ackDue()).toBeUndefined();
  });

  test('handling that finishes after the session restarted does not move the new session', () => {
    const inb = new InboundStream();
    inb.begin(1);
    inb.accept(1);
    const late = inb.delivered(1, true) as () => void;
    inb.begin(2);
    late();
    expect(inb.handled).toBe(0);
  });
});

describe('back-off', () => {
  test('grows exponentially to the cap, with jitter below each ceiling, and resets', () => {
    let r = 0.999;
    const backoff = new Backoff({ initialDelayMs: 100, maxDelayMs: 1000, multiplier: 2, jitter: 0.5 }, () => r);
    const noJitterCeilings = [100, 200, 400, 800, 1000, 1000];
    for (const ceiling of noJitterCeilings) {
      const d = backoff.next();
      expect(d).toBeGreaterThanOrEqual(ceiling / 2);
      expect(d).toBeLessThanOrEqual(ceiling);
    }
    r = 0;
    backoff.reset();
    expect(backoff.next()).toBe(100);
  });

  test('jitter spreads delays', () => {
    const delays = new Set<number>();
    for (let i = 0; i < 20; i++) delays.add(new Backoff().next());
    expect(delays.size).toBeGreaterThan(5);
  });
});
