import type { MqttClient } from 'mqtt';
import { parseBenchArgs } from '../../../src/bench/args.js';
import type { PubOptions } from '../../../src/bench/options.js';
import { readHeader } from '../../../src/bench/payload.js';
import { PublishLoop, type Publisher } from '../../../src/bench/publisher.js';

type PublishCallback = (error?: Error) => void;

/** Stands in for MqttClient.publish: records payloads and completes each publish when told to. */
class FakeClient {
  readonly payloads: Buffer[] = [];
  readonly pending: PublishCallback[] = [];
  maxPending = 0;

  constructor(private readonly completeSynchronously: boolean) {}

  publish(_topic: string, payload: Buffer, _options: object, callback: PublishCallback): this {
    this.payloads.push(payload);
    if (this.completeSynchronously) callback();
    else this.pending.push(callback);
    this.maxPending = Math.max(this.maxPending, this.pending.length);
    return this;
  }

  completeAll(): void {
    for (const callback of this.pending.splice(0)) callback();
  }
}

function pubOptions(flags: string[]): PubOptions {
  const invocation = parseBenchArgs(['pub', ...flags]);
  if (invocation?.command !== 'pub') throw new Error('expected pub options');
  return invocation.options;
}

function publisherOn(fake: FakeClient, index: number, matchingSubscriptions = 0, receiveMaximum?: number): Publisher {
  const bench = { client: fake as unknown as MqttClient, index, clientId: `p${index}`, ...(receiveMaximum ? { receiveMaximum } : {}) };
  return { bench, topic: `bench/${index}`, matchingSubscriptions, sent: 0, completed: 0, inflight: 0, blockedOnWindow: false };
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const wait = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('PublishLoop', () => {
  it('never has more than --inflight QoS 1 messages unacknowledged and stops at --messages', async () => {
    const fake = new FakeClient(false);
    const publisher = publisherOn(fake, 1);
    const loop = new PublishLoop(pubOptions(['--qos', '1', '--inflight', '5', '--messages', '12']), [publisher]);
    loop.start();
    await turn();
    expect(fake.payloads).toHaveLength(5);
    while (!loop.allSent) {
      fake.completeAll();
      await turn();
    }
    fake.completeAll();
    loop.stop();
    expect(fake.maxPending).toBe(5);
    expect(publisher).toMatchObject({ sent: 12, completed: 12, inflight: 0 });
    expect(fake.payloads.map((p) => readHeader(p)?.sequence)).toEqual([...Array(12).keys()]);
  });

  it('lowers the window to the broker Receive Maximum for QoS > 0', async () => {
    const fake = new FakeClient(false);
    const loop = new PublishLoop(pubOptions(['--qos', '2', '--inflight', '50']), [publisherOn(fake, 1, 0, 7)]);
    loop.start();
    await turn();
    await turn();
    loop.stop();
    expect(fake.payloads).toHaveLength(7);
  });

  it('writes QoS 0 in batches of --inflight per event-loop turn', async () => {
    const fake = new FakeClient(true);
    const loop = new PublishLoop(pubOptions(['--inflight', '8']), [publisherOn(fake, 1)]);
    loop.start();
    await turn();
    const afterFirstTurn = fake.payloads.length;
    await turn();
    loop.stop();
    expect(afterFirstTurn).toBe(8);
    expect(fake.payloads.length).toBeGreaterThan(afterFirstTurn);
  });

  it('paces each publisher at --rate', async () => {
    const fakes = [new FakeClient(true), new FakeClient(true)];
    const loop = new PublishLoop(pubOptions(['--rate', '100']), fakes.map((fake, i) => publisherOn(fake, i + 1)));
    loop.start();
    await wait(300);
    loop.stop();
    for (const fake of fakes) {
      // 100 msg/s for 0.3 s is 30 (plus the one due at t = 0); timers may run late on a busy machine.
      expect(fake.payloads.length).toBeGreaterThanOrEqual(20);
      expect(fake.payloads.length).toBeLessThanOrEqual(32);
    }
  });

  it('holds a publisher at --e2e-window until its subscribers catch up', async () => {
    const fake = new FakeClient(true);
    let delivered = 0;
    const publisher = publisherOn(fake, 1, 2);
    const loop = new PublishLoop(pubOptions(['--e2e-window', '10', '--inflight', '100']), [publisher], () => delivered);
    loop.start();
    await turn();
    await turn();
    expect(fake.payloads).toHaveLength(5); // 5 messages x 2 matching subscriptions = 10 outstanding deliveries
    expect(publisher.blockedOnWindow).toBe(true);
    delivered = 4;
    loop.onDelivered(1);
    await turn();
    loop.stop();
    expect(fake.payloads).toHaveLength(7);
  });
});
