/**
 * MQTT 3.1.1 conformance, chapter 6: MQTT over WebSocket on a `ws` listener.
 * Statement ids refer to the OASIS mqtt-v3.1.1-os normative statements; docs/conformance.md maps them.
 */
import { generate, parser as createParser, type Packet } from 'mqtt-packet';
import WebSocket from 'ws';
import { BrokerProcess } from '../../harness/broker-process.js';
import { uniqueId } from '../../harness/mqtt-raw.js';

let broker: BrokerProcess;
const sockets: WebSocket[] = [];

beforeAll(async () => {
  broker = await BrokerProcess.start({
    nodeName: 'conformance-ws',
    configYaml: ['listeners:', '  - { name: mqtt, protocol: mqtt, port: 0 }', '  - { name: ws, protocol: ws, port: 0, path: /mqtt }'].join('\n'),
  });
});
afterEach(() => {
  for (const ws of sockets.splice(0)) ws.terminate();
});
afterAll(() => broker?.dispose());

interface WsSession {
  ws: WebSocket;
  packets: Packet[];
  nextPacket(timeoutMs?: number): Promise<Packet>;
  closed(timeoutMs?: number): Promise<boolean>;
}

async function openWs(protocols: string[] = ['mqtt']): Promise<WsSession> {
  const ws = new WebSocket(`ws://127.0.0.1:${broker.port('ws')}/mqtt`, protocols);
  sockets.push(ws);
  const packets: Packet[] = [];
  const parser = createParser({ protocolVersion: 4 });
  parser.on('packet', (p: Packet) => packets.push(p));
  ws.on('message', (data: Buffer) => parser.parse(data));
  ws.on('error', () => { /* a refused or reset connection shows as close */ });
  let isClosed = false;
  ws.on('close', () => { isClosed = true; });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const until = async (check: () => boolean, timeoutMs: number): Promise<boolean> => {
    const deadline = Date.now() + timeoutMs;
    while (!check() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    return check();
  };
  return {
    ws,
    packets,
    async nextPacket(timeoutMs = 2000) {
      if (!(await until(() => packets.length > 0, timeoutMs))) throw new Error(`no MQTT packet over WebSocket within ${timeoutMs} ms`);
      return packets.shift() as Packet;
    },
    closed: (timeoutMs = 2000) => until(() => isClosed, timeoutMs),
  };
}

const connectBytes = (): Buffer => generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: uniqueId('ws'), clean: true, keepalive: 30 });

describe('6 Using WebSocket as a network transport', () => {
  test('[MQTT-6.0.0-1] MQTT packets in binary frames are processed', async () => {
    const session = await openWs();
    session.ws.send(connectBytes(), { binary: true });
    expect(await session.nextPacket()).toMatchObject({ cmd: 'connack', returnCode: 0 });
  });

  test('[MQTT-6.0.0-1] a text data frame closes the network connection', async () => {
    const session = await openWs();
    session.ws.send(connectBytes(), { binary: true });
    await session.nextPacket();
    const topic = `ws-text/${uniqueId()}`;
    session.ws.send(generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 0 }] }), { binary: true });
    expect((await session.nextPacket()).cmd).toBe('suback');
    // A valid QoS 0 PUBLISH to the session's own subscription whose bytes are all ASCII, sent as a text frame.
    const publish = generate({ cmd: 'publish', topic, payload: Buffer.from('text'), qos: 0, dup: false, retain: false });
    expect(publish.every((byte) => byte < 0x80)).toBe(true);
    session.ws.send(publish.toString('ascii'), { binary: false });
    expect(await session.closed(1000)).toBe(true);
    expect(session.packets.filter((p) => p.cmd === 'publish')).toEqual([]);
  });

  test('[MQTT-6.0.0-2] packets are not assumed aligned on frames: one packet over two frames, two packets in one frame', async () => {
    const session = await openWs();
    const connect = connectBytes();
    session.ws.send(connect.subarray(0, 5), { binary: true });
    session.ws.send(connect.subarray(5), { binary: true });
    expect(await session.nextPacket()).toMatchObject({ cmd: 'connack', returnCode: 0 });
    const topic = `ws/${uniqueId()}`;
    session.ws.send(Buffer.concat([
      generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 0 }] }),
      generate({ cmd: 'pingreq' }),
    ]), { binary: true });
    expect([(await session.nextPacket()).cmd, (await session.nextPacket()).cmd].sort()).toEqual(['pingresp', 'suback']);
  });

  test('[MQTT-6.0.0-4] the server selects the "mqtt" sub-protocol when the client offers only it', async () => {
    const session = await openWs(['mqtt']);
    expect(session.ws.protocol).toBe('mqtt');
  });

  test('[MQTT-6.0.0-4] the server selects "mqtt" when the client offers it among other sub-protocols', async () => {
    const session = await openWs(['mqttv3.1', 'mqtt']);
    expect(session.ws.protocol).toBe('mqtt');
  });
});
