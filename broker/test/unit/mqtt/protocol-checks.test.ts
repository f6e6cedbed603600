import type { Client } from 'aedes';
import mqttPacket, { type IConnectPacket, type Packet } from 'mqtt-packet';
import { connectRefusal } from '../../../src/mqtt/connect-policy.js';
import { enforceProtocolChecks } from '../../../src/mqtt/protocol-checks.js';
import { utf8StringProblem } from '../../../src/mqtt/strict-strings.js';
import { selectMqttSubprotocol } from '../../../src/mqtt/websocket-stream.js';

const { generate, parser: createParser } = mqttPacket;

/** A parser hardened the way the node hardens each client's, and what it emitted. */
function hardenedParser(): { parse(bytes: Buffer): void; packets: Packet[]; errors: string[] } {
  const parser = createParser();
  const packets: Packet[] = [];
  const errors: string[] = [];
  parser.on('packet', (p: Packet) => packets.push(p));
  parser.on('error', (err: Error) => errors.push(err.message));
  enforceProtocolChecks({ _parser: parser } as unknown as Client);
  return { parse: (bytes) => void parser.parse(bytes), packets, errors };
}

const u16 = (n: number): Buffer => Buffer.from([n >> 8, n & 0xff]);
const field = (value: string | Buffer): Buffer => {
  const bytes = Buffer.from(value);
  return Buffer.concat([u16(bytes.length), bytes]);
};
/** A fixed header (remaining length < 128) and body. */
const frame = (firstByte: number, ...parts: Buffer[]): Buffer => {
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from([firstByte, body.length]), body]);
};
const connectBody = (flags: number, ...payload: Buffer[]): Buffer =>
  frame(0x10, field('MQTT'), Buffer.from([4, flags]), u16(30), ...payload);

const validConnect = (): Buffer => generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'c1', clean: true, keepalive: 30 });

describe('strict UTF-8 strings', () => {
  test('well-formed UTF-8, U+FEFF included, is accepted; U+0000, surrogates, overlong forms and stray bytes are not', () => {
    expect(utf8StringProblem(Buffer.from('caf\u00e9/\ufeff/\u{1f600}'))).toBeUndefined();
    expect(utf8StringProblem(Buffer.from([0x61, 0x00]))).toMatch(/U\+0000/);
    expect(utf8StringProblem(Buffer.from([0xed, 0xa0, 0x80]))).toMatch(/UTF-8/);
    expect(utf8StringProblem(Buffer.from([0xc0, 0x80]))).toMatch(/./);
    expect(utf8StringProblem(Buffer.from([0x61, 0x80]))).toMatch(/UTF-8/);
  });

  test('an ill-formed topic stops the PUBLISH with one error that says why; a well-formed one parses', () => {
    const bad = hardenedParser();
    bad.parse(Buffer.concat([validConnect(), frame(0x30, field(Buffer.from([0x74, 0x2f, 0xff])), Buffer.from('x'))]));
    expect(bad.errors).toEqual(['publish: string is not well-formed UTF-8 [MQTT-1.5.3-1]']);
    expect(bad.packets.map((packet) => packet.cmd)).toEqual(['connect']);
    const good = hardenedParser();
    good.parse(Buffer.concat([validConnect(), frame(0x30, field('t/\u00e9'), Buffer.from('x'))]));
    expect(good.errors).toEqual([]);
    expect(good.packets.at(-1)).toMatchObject({ cmd: 'publish', topic: 't/\u00e9' });
  });

  test('U+0000 in a client identifier stops the CONNECT', () => {
    const p = hardenedParser();
    p.parse(connectBody(0x02, field(Buffer.from([0x61, 0x00, 0x62]))));
    expect(p.errors).toEqual(['connect: string contains U+0000 [MQTT-1.5.3-2]']);
    expect(p.packets).toEqual([]);
  });
});

describe('CONNECT checks', () => {
  test('a valid CONNECT, with will, user name and password, parses as before', () => {
    const p = hardenedParser();
    p.parse(generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'c', clean: false, keepalive: 10, username: 'u', password: Buffer.from('p'), will: { topic: 'w', payload: Buffer.from('bye'), qos: 2, retain: true } }));
    expect(p.errors).toEqual([]);
    expect(p.packets[0]).toMatchObject({ cmd: 'connect', clientId: 'c', username: 'u', will: { topic: 'w', qos: 2 } });
  });

  test.each([
    ['will fields without the Will Flag', connectBody(0x02, field('c'), field('will/topic'), field('will-body')), /bytes after the payload fields/],
    ['a user name without the User Name Flag', connectBody(0x02, field('c'), field('someone')), /bytes after the payload fields/],
    ['a password without the Password Flag', connectBody(0x82, field('c'), field('someone'), field('secret')), /bytes after the payload fields/],
    ['Will QoS 3', connectBody(0x02 | 0x04 | 0x18, field('c'), field('w'), field('x')), /Will QoS 3/],
    ['a password without a user name', connectBody(0x42, field('c'), field('secret')), /Password Flag 1 with User Name Flag 0/],
  ])('%s is refused as malformed', (_what, bytes, message) => {
    const p = hardenedParser();
    p.parse(bytes);
    expect(p.packets).toEqual([]);
    expect(p.errors).toHaveLength(1);
    expect(p.errors[0]).toMatch(message);
  });

  test.each([0, 2, 6, 127, 255])('level %i is passed on with that level (aedes answers CONNACK 0x01), and its body is skipped', (level) => {
    const p = hardenedParser();
    const connect = frame(0x10, field('MQTT'), Buffer.from([level, 0x02]), u16(30), field('c'), Buffer.from([0xff, 0xff]));
    p.parse(Buffer.concat([connect, Buffer.from([0xc0, 0x00])]));
    expect(p.errors).toEqual([]);
    expect(p.packets.map((packet) => ({ cmd: packet.cmd, version: (packet as IConnectPacket).protocolVersion }))).toEqual([
      { cmd: 'connect', version: level },
      { cmd: 'pingreq', version: undefined },
    ]);
  });

  test('a wrong protocol name is still refused whatever the level', () => {
    const p = hardenedParser();
    p.parse(frame(0x10, field('MQTX'), Buffer.from([6, 0x02]), u16(30), field('c')));
    expect(p.packets).toEqual([]);
    expect(p.errors).toEqual(['Invalid protocolId']);
  });
});

describe('UNSUBSCRIBE checks', () => {
  test('an UNSUBSCRIBE without a Topic Filter is refused; with one it parses', () => {
    const empty = hardenedParser();
    empty.parse(Buffer.concat([validConnect(), frame(0xa2, u16(1))]));
    expect(empty.errors).toEqual(['unsubscribe: no Topic Filter [MQTT-3.10.3-2]']);
    const withFilter = hardenedParser();
    withFilter.parse(Buffer.concat([validConnect(), frame(0xa2, u16(2), field('a/+'))]));
    expect(withFilter.errors).toEqual([]);
    expect(withFilter.packets.at(-1)).toMatchObject({ cmd: 'unsubscribe', messageId: 2, unsubscriptions: ['a/+'] });
  });
});

describe('connect policy (CONNACK 0x02 refusals)', () => {
  const limits = { maxClientIdLength: 30, maxKeepalive: 60 };
  const connect = (fields: Partial<IConnectPacket>): IConnectPacket =>
    ({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'c', clean: true, keepalive: 30, ...fields });

  test.each([
    ['a 30-byte client id', 'accepted', { clientId: 'c'.repeat(30) }],
    ['a 31-byte client id', 'client_id_too_long', { clientId: 'c'.repeat(31) }],
    ['a 10-character id of 30 bytes', 'accepted', { clientId: '\u20ac'.repeat(10) }],
    ['an 11-character id of 33 bytes', 'client_id_too_long', { clientId: '\u20ac'.repeat(11) }],
    ['an empty id with CleanSession 1', 'accepted', { clientId: '' }],
    ['an empty id with CleanSession 0', 'empty_client_id', { clientId: '', clean: false }],
    ['an empty id in MQTT 3.1', 'empty_client_id', { clientId: '', protocolId: 'MQIsdp', protocolVersion: 3 }],
    ['keep alive 60', 'accepted', { keepalive: 60 }],
    ['keep alive 61', 'keepalive_too_large', { keepalive: 61 }],
    ['keep alive 0 (none)', 'keepalive_too_large', { keepalive: 0 }],
    ['an unsupported level (left to aedes)', 'accepted', { protocolVersion: 6 as 4, clientId: '', clean: false }],
  ] as const)('%s: %s', (_what, outcome, fields) => {
    expect(connectRefusal(connect(fields as Partial<IConnectPacket>), limits)?.reason ?? 'accepted').toBe(outcome);
  });

  test('without a keep alive limit any keep alive is accepted', () => {
    expect(connectRefusal(connect({ keepalive: 0 }), { maxClientIdLength: 30, maxKeepalive: 0 })).toBeUndefined();
    expect(connectRefusal(connect({ keepalive: 65535 }), { maxClientIdLength: 30, maxKeepalive: 0 })).toBeUndefined();
  });
});

describe('WebSocket sub-protocol', () => {
  test('"mqtt" is selected whenever offered [MQTT-6.0.0-4]; "mqttv3.1" for MQTT 3.1 clients; nothing else', () => {
    expect(selectMqttSubprotocol(new Set(['mqttv3.1', 'mqtt']))).toBe('mqtt');
    expect(selectMqttSubprotocol(new Set(['mqtt']))).toBe('mqtt');
    expect(selectMqttSubprotocol(new Set(['mqttv3.1']))).toBe('mqttv3.1');
    expect(selectMqttSubprotocol(new Set(['chat']))).toBe(false);
  });
});
