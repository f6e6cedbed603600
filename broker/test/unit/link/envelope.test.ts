import { decodeEnvelope, encodeEnvelope, EnvelopeError, type Envelope } from '../../../src/link/envelope.js';
import { parseControlTopic, messageTopic, routeTopic, responseTopic } from '../../../src/link/topics.js';

const envelope: Envelope = {
  originCluster: 'us-east', seq: 2 ** 40 + 7,
  message: { topic: 'sensors/é/1', payload: Buffer.from('x'.repeat(1000)), qos: 2, retain: true, publisherClientId: 'dev-1', timestamp: 1_700_000_000_123 },
};

describe('link envelope', () => {
  test.each(['none', 'deflate'] as const)('round-trips every field (%s)', (compression) => {
    const bytes = encodeEnvelope(envelope, compression);
    expect(decodeEnvelope(bytes)).toEqual(envelope);
    if (compression === 'deflate') expect(bytes.length).toBeLessThan(100);
  });

  test('overhead per message is the header and three length-prefixed strings', () => {
    const small: Envelope = { originCluster: 'eu', seq: 1, message: { topic: 't', payload: Buffer.from('p'), qos: 0, retain: false, publisherClientId: '', timestamp: 0 } };
    expect(encodeEnvelope(small).length).toBe(18 + 2 + 2 + 2 + 1 + 2 + 0 + 1);
  });

  test('refuses malformed input with a typed error', () => {
    const good = encodeEnvelope(envelope);
    expect(() => decodeEnvelope(good.subarray(0, 10))).toThrow(EnvelopeError);
    expect(() => decodeEnvelope(good.subarray(0, 25))).toThrow('truncated');
    const badVersion = Buffer.from(good); badVersion[0] = 9;
    expect(() => decodeEnvelope(badVersion)).toThrow('version');
    const badQos = Buffer.from(good); badQos[1] = 3;
    expect(() => decodeEnvelope(badQos)).toThrow('flags');
    const zeroSeq = Buffer.from(good); zeroSeq.fill(0, 2, 10);
    expect(() => decodeEnvelope(zeroSeq)).toThrow('sequence');
    const badDeflate = Buffer.from(good); badDeflate[1] |= 0x08;
    expect(() => decodeEnvelope(badDeflate)).toThrow('inflate');
  });
});

describe('link control topics', () => {
  test('name the kind and the sending agent', () => {
    expect(parseControlTopic(routeTopic('us/node-1'))).toEqual({ kind: 'route', actor: 'us/node-1', cluster: 'us' });
    expect(parseControlTopic(messageTopic('us/node-1'))).toEqual({ kind: 'msg', actor: 'us/node-1', cluster: 'us' });
    expect(parseControlTopic(responseTopic('eu/n'))).toEqual({ kind: 'resp', actor: 'eu/n', cluster: 'eu' });
    expect(parseControlTopic('$LINK/cluster/msg/us')).toBeNull();
    expect(parseControlTopic('$LINK/cluster/msg/us/n/extra')).toBeNull();
    expect(parseControlTopic('$LINK/other/x/y')).toBeNull();
  });
});
