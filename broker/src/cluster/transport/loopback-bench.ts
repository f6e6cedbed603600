/**
 * Micro-benchmark of the cluster transport over loopback: a sender process and a receiver process (forked, so they
 * do not share an event loop) linked by one authenticated link.
 *
 *   node dist/broker/src/cluster/transport/loopback-bench.js [--messages 200000] [--size 100] [--inflight 1000] [--rate 10000] [--seconds 3]
 *
 * Prints messages/s and ack latency (send() call → acknowledgement) for a closed loop keeping `inflight` sends
 * outstanding (saturation), then for a paced stream at a fixed rate (latency without queueing).
 */
import { fork } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createLogger } from '../../log/logger.js';
import { ClusterTransport } from './server.js';

const SECRET = Buffer.from('loopback-benchmark-cluster-secret');

function transport(nodeId: string): ClusterTransport {
  return new ClusterTransport({
    identity: { clusterName: 'bench', nodeId, role: 'core', incarnation: 1, address: '127.0.0.1:0' },
    secret: SECRET,
    logger: createLogger('warn'),
  });
}

async function runReceiver(): Promise<void> {
  const receiver = transport('receiver');
  let received = 0;
  receiver.on('message', () => { received++; });
  const { port } = await receiver.listen(0, '127.0.0.1');
  process.send?.({ port });
  process.on('message', async (msg: { stop?: boolean }) => {
    if (!msg.stop) return;
    process.send?.({ received });
    await receiver.close();
    process.exit(0);
  });
}

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] as number;
}

function report(name: string, latencies: Float64Array, elapsedMs: number): void {
  const sorted = latencies.slice().sort();
  const rate = Math.round(latencies.length / (elapsedMs / 1000));
  console.log(`${name}: ${latencies.length} messages in ${elapsedMs.toFixed(0)} ms = ${rate.toLocaleString('en-US')} msg/s; ack latency p50 ${percentile(sorted, 0.5).toFixed(3)} ms, p99 ${percentile(sorted, 0.99).toFixed(3)} ms, max ${(sorted[sorted.length - 1] as number).toFixed(3)} ms`);
}

/** Closed loop: keeps `inflight` sends outstanding, so latency is measured at saturation without an unbounded queue. */
async function saturate(send: (payload: Buffer) => Promise<void>, count: number, inflight: number, payload: Buffer): Promise<void> {
  const latencies = new Float64Array(count);
  const started = performance.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      const t0 = performance.now();
      await send(payload);
      latencies[i] = performance.now() - t0;
    }
  };
  await Promise.all(Array.from({ length: inflight }, worker));
  report(`saturating, ${inflight} in flight`, latencies, performance.now() - started);
}

async function paced(send: (payload: Buffer) => Promise<void>, rate: number, seconds: number, payload: Buffer): Promise<void> {
  const count = rate * seconds;
  const latencies = new Float64Array(count);
  const pending: Promise<void>[] = [];
  const started = performance.now();
  const perTickMs = 1;
  let sent = 0;
  while (sent < count) {
    const due = Math.min(count, Math.floor(((performance.now() - started) / 1000) * rate) + 1);
    for (; sent < due; sent++) {
      const i = sent;
      const t0 = performance.now();
      pending.push(send(payload).then(() => { latencies[i] = performance.now() - t0; }));
    }
    await new Promise((r) => setTimeout(r, perTickMs));
  }
  await Promise.all(pending);
  report(`paced at ${rate.toLocaleString('en-US')} msg/s`, latencies, performance.now() - started);
}

async function runSender(options: { messages: number; size: number; rate: number; seconds: number; inflight: number }): Promise<void> {
  const child = fork(fileURLToPath(import.meta.url), ['--receiver'], { stdio: 'inherit' });
  const port = await new Promise<number>((resolve) => child.once('message', (m: { port: number }) => resolve(m.port)));
  const sender = transport('sender');
  const link = await sender.dial(`127.0.0.1:${port}`);
  await new Promise<void>((resolve) => (link.connected ? resolve() : link.once('connected', () => resolve())));
  const payload = Buffer.alloc(options.size, 0x61);
  const send = (p: Buffer): Promise<void> => link.send(2, p);
  console.log(`cluster transport loopback benchmark: ${options.size}-byte payloads, node ${process.version}, sender and receiver in separate processes`);
  await saturate(send, Math.min(50_000, options.messages), options.inflight, payload); // warm-up
  await saturate(send, options.messages, options.inflight, payload);
  await paced(send, options.rate, options.seconds, payload);
  const stats = link.stats();
  console.log(`link: ${stats.framesSent} frames / ${(stats.bytesSent / 1e6).toFixed(1)} MB sent, ${stats.acksReceived} acks received, ${stats.resends} resends`);
  child.send({ stop: true });
  await new Promise((resolve) => child.once('exit', resolve));
  await sender.close();
}

const { values } = parseArgs({
  options: {
    receiver: { type: 'boolean', default: false },
    messages: { type: 'string', default: '200000' },
    size: { type: 'string', default: '100' },
    rate: { type: 'string', default: '10000' },
    seconds: { type: 'string', default: '3' },
    inflight: { type: 'string', default: '1000' },
  },
});
if (values.receiver) await runReceiver();
else await runSender({ messages: Number(values.messages), size: Number(values.size), rate: Number(values.rate), seconds: Number(values.seconds), inflight: Number(values.inflight) });
