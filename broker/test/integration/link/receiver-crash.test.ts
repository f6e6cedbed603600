/**
 * `kill -9` of the receiving region's node while linked messages stream in. The receiver publishes a carrier's
 * messages, then commits the de-dup mark, then acknowledges: a kill in between makes the sender resend the carrier.
 * Each linked message carries a publish identity derived from (link, origin agent, epoch, sequence), recorded with
 * the subscriber-queue writes in one commit, so the republished copy is queued for no session a second time: a
 * persistent QoS 2 subscriber gets every message once (see broker/src/link/README.md, "Why it is exactly-once").
 */
import type { MqttClient } from 'mqtt';
import { TcpProxy } from '../../harness/tcp-proxy.js';
import { connectClient, linkedRegions, sleep, waitFor, type Region } from './regions.js';

const TOTAL = 1500;
const KILLS = 3;

describe('receiving node killed mid-stream', () => {
  let A: Region;
  let B: Region;
  let toA: TcpProxy;
  let toB: TcpProxy;
  let subProxy: TcpProxy | undefined;
  const clients: MqttClient[] = [];
  afterAll(async () => {
    for (const c of clients) c.end(true);
    await A?.dispose();
    await B?.dispose();
    await toA?.close();
    await toB?.close();
    await subProxy?.close();
  });

  test(`${KILLS} kills of the receiver while ${TOTAL} QoS 2 messages cross: a persistent subscriber gets each once, none lost`, async () => {
    ({ A, B, toB, toA } = await linkedRegions('rx', 'tx'));
    await waitFor(async () => (await A.link('tx')).state === 'connected' && (await B.link('rx')).state === 'connected', 'both links connected');
    const counts = new Map<number, number>();
    // One client instance across the kills, behind a proxy that follows A's new port: MQTT.js keeps a QoS 2
    // message it has PUBRECed in memory until the PUBREL, so a new instance would lose it (client state, not ours).
    subProxy = await TcpProxy.start(A.mqttPort);
    const sub = await connectClient(subProxy.port, { clientId: 'rx-audit', clean: false, reconnectPeriod: 200 });
    clients.push(sub);
    sub.on('message', (_t, p) => counts.set(Number(p), (counts.get(Number(p)) ?? 0) + 1));
    await sub.subscribeAsync('stream/#', { qos: 2 });
    await waitFor(async () => (await B.link('rx')).routesReceived >= 1, 'route of rx in tx');

    const pub = await connectClient(B.mqttPort, { clientId: 'tx-door', clean: false });
    clients.push(pub);
    const publishing = (async () => {
      for (let i = 0; i < TOTAL; i++) {
        await pub.publishAsync(`stream/${i % 5}`, String(i), { qos: 2 });
        if (i % 25 === 0) await sleep(5);
      }
    })();
    for (let k = 0; k < KILLS; k++) {
      await waitFor(() => counts.size >= ((k + 1) * TOTAL) / (KILLS + 2), `deliveries before kill ${k + 1}`, 30000);
      await A.broker.kill9();
      await A.boot();
      toA.setTarget(A.mqttPort);
      subProxy.setTarget(A.mqttPort);
    }
    await publishing;
    await waitFor(() => counts.size === TOTAL, `all ${TOTAL} delivered`, 60000).catch(async (err: Error) => {
      const missing = [...Array(TOTAL).keys()].filter((i) => !counts.has(i));
      throw new Error(`${err.message}: ${missing.length} missing (${missing.slice(0, 20).join(',')}); tx queue ${JSON.stringify((await B.link('rx')).queue)}`);
    });
    await sleep(1500);
    const duplicated = [...counts].filter(([, n]) => n > 1).map(([i]) => i);
    process.stdout.write(`receiver kills: ${KILLS}, delivered twice ${duplicated.length} (2, 49, 406 in runs without the publish identity)\n`);
    expect(duplicated).toEqual([]);
    expect(counts.size).toBe(TOTAL);
  });
});
