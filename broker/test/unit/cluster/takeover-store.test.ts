import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { checkClaims, decodeSnapshot, encodeSnapshot, SessionCodecError } from '../../../src/cluster/session-codec.js';
import { encode } from '../../../src/store/codec.js';
import { openStore, type NodeStore, type StoredPacket } from '../../../src/store/index.js';
import type { SessionSnapshot } from '../../../src/store/persistence.js';

const logger = pino({ level: 'silent' });
let root: string;
let dirs = 0;
const open: NodeStore[] = [];

beforeAll(() => { root = mkdtempSync(join(tmpdir(), 'takeover-store-')); });
afterEach(async () => { await Promise.all(open.splice(0).map((s) => s.close())); });
afterAll(() => rmSync(root, { recursive: true, force: true }));

async function openAt(dir: string, brokerId: string): Promise<NodeStore> {
  const store = await openStore({ dir, durability: 'durable', commitDelayMs: 0, maxSizeMb: 256, maxQueuedMessages: 5, logger });
  await store.persistence.setup({ id: brokerId });
  open.push(store);
  return store;
}

async function reopen(store: NodeStore, dir: string, brokerId: string): Promise<NodeStore> {
  await store.close();
  open.splice(open.indexOf(store), 1);
  return openAt(dir, brokerId);
}

const publish = (broker: string, counter: number, payload: string | Buffer, extra: Partial<StoredPacket> = {}): StoredPacket => ({
  cmd: 'publish', topic: 't/x', payload, qos: 1, retain: false, dup: false, brokerId: broker, brokerCounter: counter, ...extra,
});

/** A session with a stored flag, two subscriptions, queued / in-flight / PUBREL entries and a QoS 2 received message. */
async function fillSession(store: NodeStore, clientId: string): Promise<void> {
  const p = store.persistence;
  const client = { id: clientId };
  await p.openSession(client);
  await p.addSubscriptions(client, [{ topic: 't/+', qos: 1 }, { topic: 'q0/#', qos: 0 }]);
  await p.outgoingEnqueueCombi([{ clientId }], publish('a.1', 1, 'queued'));
  await p.outgoingEnqueueCombi([{ clientId }], publish('a.1', 2, Buffer.from([0, 1, 2]), { qos: 2, properties: { userProperties: { k: 'v' } } }));
  await p.outgoingEnqueueCombi([{ clientId }], publish('a.1', 3, 'pubrel-me', { qos: 2 }));
  await p.outgoingUpdate(client, { ...publish('a.1', 2, Buffer.from([0, 1, 2]), { qos: 2 }), messageId: 11 });
  await p.outgoingUpdate(client, { ...publish('a.1', 3, 'pubrel-me', { qos: 2 }), messageId: 12 });
  await p.outgoingUpdate(client, { cmd: 'pubrel', messageId: 12 });
  await p.incomingStorePacket(client, { cmd: 'publish', topic: 'in', payload: Buffer.from('q2'), qos: 2, messageId: 40 });
}

function describeQueue(snapshot: SessionSnapshot | undefined): string[] {
  return (snapshot?.outgoing ?? []).map((p) => (p.cmd === 'pubrel' ? `pubrel:${p.messageId}` : `${String(p.payload)}${p.messageId ? `#${p.messageId}` : ''}`));
}

describe('DurablePersistence session handover', () => {
  test('export → import on another store keeps every part of the session, durably, beyond the queue limit', async () => {
    const dirA = join(root, `a${++dirs}`);
    const dirB = join(root, `b${++dirs}`);
    const a = await openAt(dirA, 'a.1');
    let b = await openAt(dirB, 'b.1');
    await fillSession(a, 'c');
    for (let i = 0; i < 5; i++) await b.persistence.outgoingEnqueueCombi([{ clientId: 'c' }], publish('b.1', 100 + i, `own${i}`));
    const snapshot = decodeSnapshot(encodeSnapshot(a.persistence.exportSession('c') as SessionSnapshot));
    const result = await b.persistence.importSession(snapshot);
    expect(result).toEqual({ subscriptions: 1, queued: 3, received: 1 });
    b = await reopen(b, dirB, 'b.2');
    const p = b.persistence;
    expect(await p.openSession({ id: 'c' })).toBe(true);
    expect((await p.subscriptionsByClient({ id: 'c' })).map((s) => `${s.topic}@${s.qos}`).sort()).toEqual(['q0/#@0', 't/+@1']);
    expect((await p.subscriptionsByTopic('t/x')).map((s) => s.clientId)).toEqual(['c']);
    const queue = p.exportSession('c');
    expect(describeQueue(queue)).toEqual(['own0', 'own1', 'own2', 'own3', 'own4', 'queued', '\u0000\u0001\u0002#11', 'pubrel:12']);
    expect(Buffer.isBuffer(queue?.outgoing[6]?.payload)).toBe(true);
    expect(queue?.outgoing[6]?.properties).toEqual({ userProperties: { k: 'v' } });
    expect((await p.incomingGetPacket({ id: 'c' }, { cmd: 'publish', messageId: 40 })).payload).toEqual(Buffer.from('q2'));
  });

  test('importing the same session twice adds nothing; what the importer has wins', async () => {
    const a = await openAt(join(root, `a${++dirs}`), 'a.1');
    const b = await openAt(join(root, `b${++dirs}`), 'b.1');
    await fillSession(a, 'c');
    await b.persistence.addSubscriptions({ id: 'c' }, [{ topic: 't/+', qos: 2 }]);
    const snapshot = a.persistence.exportSession('c') as SessionSnapshot;
    await b.persistence.importSession(snapshot);
    expect(await b.persistence.importSession(snapshot)).toEqual({ subscriptions: 0, queued: 0, received: 0 });
    expect(b.persistence.queuedCount('c')).toBe(3);
    expect((await b.persistence.subscriptionsByClient({ id: 'c' })).find((s) => s.topic === 't/+')?.qos).toBe(2);
  });

  test('a detached session is out of memory only: a restart brings it back; reattach restores it in place', async () => {
    const dir = join(root, `a${++dirs}`);
    let a = await openAt(dir, 'a.1');
    await fillSession(a, 'c');
    const before = a.persistence.exportSession('c');
    const detached = a.persistence.detachSession('c');
    expect(a.persistence.hasSession('c')).toBe(false);
    expect(await a.persistence.subscriptionsByTopic('t/x')).toEqual([]);
    expect(detached?.outgoing.map((e) => e.seq)).toEqual([...(detached?.outgoing.map((e) => e.seq) ?? [])].sort((x, y) => x - y));
    a.persistence.reattachSession(detached as NonNullable<typeof detached>);
    expect(a.persistence.exportSession('c')).toEqual(before);
    a.persistence.detachSession('c');
    a = await reopen(a, dir, 'a.2');
    expect(describeQueue(a.persistence.exportSession('c'))).toEqual(describeQueue(before));
  });

  test('deleting a detached session removes every key; a deleted session stays gone after a restart', async () => {
    const dir = join(root, `a${++dirs}`);
    let a = await openAt(dir, 'a.1');
    await fillSession(a, 'c');
    await fillSession(a, 'other');
    await a.persistence.putWill({ id: 'c' }, { cmd: 'publish', topic: 'will', payload: Buffer.from('bye'), qos: 0, retain: false });
    const detached = a.persistence.detachSession('c');
    await a.persistence.deleteDetachedSession(detached as NonNullable<typeof detached>);
    await a.persistence.deleteSession('other');
    a = await reopen(a, dir, 'a.2');
    expect(a.persistence.sessionClientIds()).toEqual(new Set());
    expect(await a.persistence.getWill({ id: 'c' })).toBeUndefined();
  });

  test('the watermark separates what was exported from what was queued later', async () => {
    const a = await openAt(join(root, `a${++dirs}`), 'a.1');
    await fillSession(a, 'c');
    const { watermark } = a.persistence.exportSession('c') as SessionSnapshot;
    await a.persistence.outgoingEnqueueCombi([{ clientId: 'c' }], publish('a.1', 9, 'late'));
    const late = a.persistence.detachSession('c')?.outgoing.filter((e) => e.seq > watermark).map((e) => String(e.packet.payload));
    expect(late).toEqual(['late']);
  });
});

describe('session codec', () => {
  const snapshot: SessionSnapshot = {
    clientId: 'c', stored: true, subscriptions: [{ topic: 'a/#', qos: 1 }],
    outgoing: [{ cmd: 'publish', topic: 'a/b', payload: 'text', qos: 1 }, { cmd: 'pubrel', messageId: 3 }],
    incoming: [{ cmd: 'publish', topic: 'in', payload: Buffer.from('x'), qos: 2, messageId: 4 }], watermark: 17,
  };

  test('round trip keeps text and bytes payloads apart', () => {
    const decoded = decodeSnapshot(encodeSnapshot(snapshot));
    expect(decoded).toEqual(snapshot);
    expect(typeof decoded.outgoing[0]?.payload).toBe('string');
    expect(Buffer.isBuffer(decoded.incoming[0]?.payload)).toBe(true);
  });

  test.each([
    ['not a snapshot', 'nope', 'is not an object'],
    ['a bad QoS', { ...snapshot, subscriptions: [{ topic: 'a', qos: 3 }] }, 'has QoS 3'],
    ['an unknown queued command', { ...snapshot, outgoing: [{ cmd: 'puback', messageId: 1 }] }, 'only publish and pubrel'],
    ['an incoming packet without id', { ...snapshot, incoming: [{ cmd: 'publish', topic: 'in', payload: 'x' }] }, 'without a messageId'],
    ['a negative watermark', { ...snapshot, watermark: -1 }, 'bad watermark'],
  ])('rejects %s', (_what, value, message) => {
    expect(() => decodeSnapshot(encode(value))).toThrow(SessionCodecError);
    expect(() => decodeSnapshot(encode(value))).toThrow(message);
  });

  test('rejects bytes that do not decode, and malformed claims', () => {
    expect(() => decodeSnapshot(Buffer.from([1, 2, 3]))).toThrow('does not decode');
    expect(checkClaims({ kind: 'k', reset: true, claims: [['c', 5]], dropped: ['d'] }, 'n')).toEqual({ reset: true, claims: [['c', 5]], dropped: ['d'] });
    expect(() => checkClaims({ kind: 'k', reset: false, claims: [['c']], dropped: [] }, 'n')).toThrow('is not [clientId, time]');
    expect(() => checkClaims({ kind: 'k', claims: [], dropped: [] }, 'n')).toThrow('reset is not a boolean');
  });
});
