// Child process of crash.test.ts: writes every kind of durable state through the compiled store and prints
// "acked <kind> <fields...>" once each write's promise has resolved. The test kill -9s it mid-stream.
// Usage: node crash-writer.mjs <dir> <durable|relaxed> <commitDelayMs>
import { writeSync } from 'node:fs';
import { pino } from 'pino';

const { openStore } = await import(new URL('../../../../dist/broker/src/store/index.js', import.meta.url).href);
const [dir, durability, commitDelayMs] = process.argv.slice(2);

const store = await openStore({
  dir, durability, commitDelayMs: Number(commitDelayMs), maxSizeMb: 256, maxQueuedMessages: 1_000_000, logger: pino({ level: 'silent' }),
});
const p = store.persistence;
await p.setup({ id: `writer.${store.incarnation}` });
const area = store.area('crash');

// A line is fully out before the next write starts. stdout may be a non-blocking pipe: wait out EAGAIN.
const pause = new Int32Array(new SharedArrayBuffer(4));
function emit(line) {
  let bytes = Buffer.from(line);
  while (bytes.length > 0) {
    try {
      bytes = bytes.subarray(writeSync(1, bytes));
    } catch (err) {
      if (err.code !== 'EAGAIN') throw err;
      Atomics.wait(pause, 0, 0, 1);
    }
  }
}
const ack = (...fields) => emit(`acked ${fields.join(' ')}\n`);
emit(`ready ${store.incarnation}\n`);

async function oneRound(i) {
  const clientId = `c${i % 16}`;
  const client = { id: clientId };
  const packet = { cmd: 'publish', topic: `t/${i}`, payload: Buffer.from(`payload ${i}`), qos: i % 2 ? 2 : 1, retain: false, dup: false, brokerId: p.broker?.id ?? 'writer', brokerCounter: i };
  await p.addSubscriptions(client, [{ topic: `t/${i}`, qos: 1, rh: 0, rap: false, nl: false }]);
  ack('sub', clientId, `t/${i}`);
  await p.outgoingEnqueueCombi([{ clientId }], packet);
  ack('queued', clientId, i);
  const messageId = (i % 60000) + 1;
  await p.outgoingUpdate(client, { ...packet, messageId });
  ack('inflight', clientId, i, messageId);
  if (packet.qos === 2) {
    // aedes hands over its live PUBREL object, write callback included: only a plain copy may be stored.
    await p.outgoingUpdate(client, { cmd: 'pubrel', messageId, writeCallback: () => undefined });
    ack('pubrel', clientId, i, messageId);
  }
  if (i % 4 === 0) {
    await p.outgoingClearMessageId(client, { cmd: 'puback', messageId });
    ack('acked-out', clientId, i);
  }
  await p.incomingStorePacket(client, { cmd: 'publish', topic: `in/${i}`, payload: Buffer.from('q2'), qos: 2, messageId });
  ack('incoming', clientId, messageId);
  await p.storeRetained({ cmd: 'publish', topic: `r/${i}`, payload: Buffer.from(`retained ${i}`), qos: 1, retain: true });
  ack('retained', `r/${i}`);
  await p.putWill({ id: `w${i}` }, { cmd: 'publish', topic: `will/${i}`, payload: Buffer.from('bye'), qos: 1, retain: false });
  ack('will', `w${i}`);
  await p.openSession({ id: `s${i}` });
  ack('session', `s${i}`);
  await area.put(`k${i}`, Buffer.from(`v${i}`));
  ack('area', `k${i}`);
}

// Several writers at once, so commits carry many writes (group commit) when the kill lands.
let next = 0;
async function worker() {
  for (;;) await oneRound(next++);
}
await Promise.all(Array.from({ length: 8 }, worker));
