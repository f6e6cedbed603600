/**
 * Fuzz test against a running node: thousands of connections carrying random bytes and mutated valid packets.
 * Bad input must close only the connection it arrived on, with a logged reason, never the node: afterwards the node
 * process is alive, /healthz is ok, a normal client is served and no connection is leaked.
 *
 *   MERIDIAN_FUZZ_ITERATIONS  cases to run (default 5000, about 10 s); raise it for a long run
 *   MERIDIAN_FUZZ_SEED        seed of the case generator (default: random, printed on failure to reproduce)
 *   MERIDIAN_FUZZ_CONCURRENCY connections in flight at once (default 16)
 */
import net from 'node:net';
import mqtt from 'mqtt';
import { BrokerProcess } from '../../harness/broker-process.js';
import { eventually, scrapeMetric } from '../../harness/metrics.js';
import { Random, fuzzCase, type FuzzCase } from './packet-fuzzer.js';

const ITERATIONS = positiveInt('MERIDIAN_FUZZ_ITERATIONS', 5000);
const CONCURRENCY = positiveInt('MERIDIAN_FUZZ_CONCURRENCY', 16);
const SEED = positiveInt('MERIDIAN_FUZZ_SEED', Math.floor(Math.random() * 2 ** 31));
const MAX_PACKET_SIZE = 64 * 1024;
const HEALTH_CHECK_EVERY = 1000;
/** How long a case's connection stays open after its last write, unless the server closes it first. */
const LINGER_MS = 30;
/** Log messages with which the node explains why it closed a connection. */
const CLOSE_REASONS = ['client error: connection closed', 'connection error before CONNECT completed', 'connection closed: bad packet', 'connection refused'];

function positiveInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) throw new Error(`${name} must be a non-negative integer, got '${raw}'`);
  return value;
}

function runCase(port: number, testCase: FuzzCase): Promise<'closed-by-server' | 'lingered'> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    let outcome: 'closed-by-server' | 'lingered' = 'lingered';
    let timer: NodeJS.Timeout | undefined;
    socket.on('error', () => { outcome = 'closed-by-server'; });
    socket.on('data', () => { /* read and discard */ });
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(outcome);
    });
    socket.once('end', () => { outcome = 'closed-by-server'; });
    socket.once('connect', () => {
      for (const chunk of testCase.chunks) if (!socket.destroyed) socket.write(chunk);
      timer = setTimeout(() => socket.destroy(), LINGER_MS);
    });
  });
}

/** A normal MQTT.js client can still connect, subscribe and get its own QoS 1 message back. */
async function normalClientIsServed(port: number, tag: string): Promise<void> {
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { protocolVersion: 4, clientId: `health-${tag}`, reconnectPeriod: 0, connectTimeout: 5000 });
  try {
    const topic = `health/${tag}`;
    const received = new Promise<string>((resolve) => client.on('message', (_t, payload) => resolve(payload.toString())));
    await client.subscribeAsync(topic, { qos: 1 });
    await client.publishAsync(topic, `still-serving-${tag}`, { qos: 1 });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<string>((_r, reject) => { timer = setTimeout(() => reject(new Error(`health client ${tag}: no message within 5 s`)), 5000); });
    const payload = await Promise.race([received, timeout]).finally(() => clearTimeout(timer));
    expect(payload).toBe(`still-serving-${tag}`);
  } finally {
    await client.endAsync();
  }
}

async function expectNodeHealthy(broker: BrokerProcess, tag: string): Promise<void> {
  expect(broker.child.exitCode).toBeNull();
  expect(broker.child.signalCode).toBeNull();
  expect(() => process.kill(broker.pid, 0)).not.toThrow();
  const health = await broker.getJson<string>('/healthz');
  expect({ status: health.status, body: health.body }).toEqual({ status: 200, body: 'ok' });
  await normalClientIsServed(broker.mqttPort, tag);
}

describe(`fuzz: ${ITERATIONS} hostile connections against a running node (seed ${SEED})`, () => {
  let broker: BrokerProcess;

  beforeAll(async () => {
    broker = await BrokerProcess.start({ nodeName: 'fuzz-node', args: ['--max-packet-size', String(MAX_PACKET_SIZE)] });
  });
  afterAll(() => broker?.dispose());

  test('random and mutated packets close only their own connection, with a logged reason; the node keeps serving', async () => {
    const rng = new Random(SEED);
    const recent: { index: number; testCase: FuzzCase }[] = [];
    const outcomes = { 'closed-by-server': 0, lingered: 0 };
    let nextIndex = 0;
    const bystander = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.mqttPort}`, { protocolVersion: 4, clientId: 'fuzz-bystander', reconnectPeriod: 0, keepalive: 0 });
    let bystanderClosed = false;
    bystander.on('close', () => { bystanderClosed = true; });
    const bystanderGot = new Promise<string>((resolve) => bystander.on('message', (_t, payload) => resolve(payload.toString())));
    await bystander.subscribeAsync('bystander/inbox', { qos: 1 });
    try {
      const worker = async (): Promise<void> => {
        while (nextIndex < ITERATIONS) {
          const index = nextIndex++;
          const testCase = fuzzCase(rng, MAX_PACKET_SIZE);
          recent.push({ index, testCase });
          if (recent.length > 2 * CONCURRENCY) recent.shift();
          outcomes[await runCase(broker.mqttPort, testCase)]++;
          if (index > 0 && index % HEALTH_CHECK_EVERY === 0) await expectNodeHealthy(broker, `mid-${index}`);
        }
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
      await expectNodeHealthy(broker, 'final');
    } catch (err) {
      const cases = recent.map(({ index, testCase }) => `#${index} ${testCase.kind}: ${testCase.chunks.map((c) => c.toString('hex')).join(' | ')}`);
      const tail = broker.logs.slice(-20).join('\n');
      throw new Error(`${(err as Error).message}\nreproduce with MERIDIAN_FUZZ_SEED=${SEED} MERIDIAN_FUZZ_ITERATIONS=${ITERATIONS}\n`
        + `last cases:\n${cases.join('\n')}\nlast node log lines:\n${tail}`);
    }

    expect(bystanderClosed).toBe(false);
    const publisher = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.mqttPort}`, { protocolVersion: 4, clientId: 'fuzz-publisher', reconnectPeriod: 0 });
    await publisher.publishAsync('bystander/inbox', 'connection survived the fuzzing', { qos: 1 });
    expect(await bystanderGot).toBe('connection survived the fuzzing');
    await Promise.all([publisher.endAsync(), bystander.endAsync()]);

    expect(outcomes['closed-by-server']).toBeGreaterThan(ITERATIONS / 10);
    const reasons = broker.logs.filter((line) => CLOSE_REASONS.some((reason) => line.includes(reason)));
    expect(reasons.length).toBeGreaterThan(ITERATIONS / 10);
    const errors = broker.logs.filter((line) => /"level":(50|60)/.test(line) || !line.startsWith('{'));
    expect(errors).toEqual([]);
    expect(await eventually(async () => (await scrapeMetric(broker, 'meridian_connections')) === 0, 10000)).toBe(true);
  }, Math.max(120000, ITERATIONS * 40 + 60000));
});
