/**
 * Latency probe of the harness: starts the three regions, then for every ordered region pair publishes QoS 2
 * messages (acme tenant) from one region's replicant to a subscriber on the other's and prints p50/p99/max of the
 * end-to-end latency next to the injected one-way delay. `node dist/e2e/harness/probe-latency.js [count]`.
 */
import mqtt, { type MqttClient } from 'mqtt';
import { DEFAULT_DELAYS, Mesh, pairKey, REGION_NAMES, type RegionName } from './mesh.js';

const percentile = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;

async function measure(mesh: Mesh, from: RegionName, to: RegionName, count: number): Promise<number[]> {
  const creds = mesh.credentials('acme');
  const connect = (port: number, id: string): Promise<MqttClient> => mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { ...creds, clientId: id, reconnectPeriod: 0 });
  const sub = await connect(mesh.region(to).clientPort, `probe-sub-${to}`);
  const pub = await connect(mesh.region(from).clientPort, `probe-pub-${from}`);
  const latencies: number[] = [];
  let warm = false;
  sub.on('message', (topic, payload) => {
    if (topic.endsWith('/warm')) warm = true;
    else latencies.push(performance.timeOrigin + performance.now() - Number(payload.toString()));
  });
  await sub.subscribeAsync(`probe/${from}/#`, { qos: 2 });
  while (!warm) {
    await pub.publishAsync(`probe/${from}/warm`, '0', { qos: 2 });
    await new Promise((r) => setTimeout(r, 200));
  }
  for (let i = 0; i < count; i++) {
    await pub.publishAsync(`probe/${from}/${i}`, String(performance.timeOrigin + performance.now()), { qos: 2 });
    await new Promise((r) => setTimeout(r, 50));
  }
  const deadline = Date.now() + 10000;
  while (latencies.length < count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  await Promise.all([sub.endAsync(true), pub.endAsync(true)]);
  return latencies.sort((a, b) => a - b);
}

async function main(): Promise<void> {
  const count = Number(process.argv[2] ?? 100);
  const started = Date.now();
  const mesh = await Mesh.start();
  process.stdout.write(`three regions started in ${Date.now() - started} ms\n`);
  process.stdout.write('from     to       injected  received  p50 ms  p99 ms  max ms\n');
  try {
    for (const from of REGION_NAMES) {
      for (const to of REGION_NAMES) {
        if (from === to) continue;
        const l = await measure(mesh, from, to, count);
        const d = DEFAULT_DELAYS[pairKey(from, to)];
        process.stdout.write(`${from.padEnd(9)}${to.padEnd(9)}${`${d.delayMs}±${d.jitterMs}`.padEnd(10)}${String(l.length).padEnd(10)}` +
          `${percentile(l, 50).toFixed(1).padEnd(8)}${percentile(l, 99).toFixed(1).padEnd(8)}${l[l.length - 1]!.toFixed(1)}\n`);
      }
    }
  } finally {
    const stopping = Date.now();
    await mesh.stop();
    process.stdout.write(`stopped in ${Date.now() - stopping} ms\n`);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`probe-latency: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
