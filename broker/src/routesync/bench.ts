/**
 * Micro-benchmark of routing and route sync:
 *   npx tsc -p tsconfig.json && node --expose-gc dist/broker/src/routesync/bench.js [routes]
 * Prints route table memory per 100k routes, match() throughput, and the time to bootstrap a peer with 100k
 * routes through the codec (encode, decode, apply), as the benchmarks ask.
 */
import { performance } from 'node:perf_hooks';
import { RouteTable } from '../routing/route-table.js';
import { decodeMessage, encodeMessage } from './codec.js';
import { RouteSync } from './hub.js';

const ROUTES = Number(process.argv[2] ?? 100_000);

/** The seed workload: one unique wildcard filter per client. */
function benchFilter(i: number): string {
  return `t/bench/+/${i}/sub/+/#`;
}

function heapUsed(): number {
  const collect = (globalThis as { gc?: () => void }).gc;
  if (collect !== undefined) for (let i = 0; i < 3; i++) collect();
  return process.memoryUsage().heapUsed;
}

function mb(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

function measureTableMemory(): void {
  const before = heapUsed();
  const table = new RouteTable();
  const owners = ['core-0', 'core-1', 'core-2'];
  for (let i = 0; i < ROUTES; i++) table.add(benchFilter(i), owners[i % 3]);
  const used = heapUsed() - before;
  console.log(`route table: ${ROUTES} routes (${table.stats().filters} filters) use ${mb(used)} → ${mb((used / ROUTES) * 100_000)} per 100k routes, ${(used / ROUTES).toFixed(0)} B/route`);
  holdUntilMeasured(table);
}

function measureReceiverMemory(): void {
  const before = heapUsed();
  const { receiver } = bootstrapPair(false);
  const used = heapUsed() - before;
  console.log(`receiving node (route table + actor lanes): ${mb((used / ROUTES) * 100_000)} per 100k routes`);
  holdUntilMeasured(receiver);
}

let sink: unknown;
function holdUntilMeasured(value: unknown): void {
  sink = value;
  sink = null;
}

function measureMatch(): void {
  const table = new RouteTable();
  for (let i = 0; i < ROUTES; i++) table.add(benchFilter(i), `node-${i % 3}`);
  table.add('t/#', 'node-9');
  table.add('$SYS/#', 'node-0');
  const topics = Array.from({ length: 10_000 }, (_, i) => `t/bench/x/${(i * 7919) % ROUTES}/sub/y/z`);
  const misses = Array.from({ length: 10_000 }, (_, i) => `other/${i}/topic`);
  for (const [label, list] of [['hit', topics], ['miss', misses]] as const) {
    const out = new Set<string>();
    let found = 0;
    const rounds = 50;
    const start = performance.now();
    for (let r = 0; r < rounds; r++) {
      for (const topic of list) {
        out.clear();
        table.matchInto(topic, out);
        found += out.size;
      }
    }
    const seconds = (performance.now() - start) / 1000;
    const rate = (rounds * list.length) / seconds;
    console.log(`match() (${label}, ${ROUTES} routes): ${(rate / 1e6).toFixed(2)} M topics/s, ${((seconds / (rounds * list.length)) * 1e6).toFixed(2)} µs each (${found} owners found)`);
  }
}

interface Timings {
  encodeMs: number;
  decodeMs: number;
  receiveMs: number;
  bytes: number;
  messages: number;
}

/** A sender with ROUTES local routes and a fresh receiver, joined through the codec. */
function bootstrapPair(report: boolean): { receiver: RouteSync; timings: Timings; totalMs: number } {
  const sender = new RouteSync({ cluster: 'bench', actor: 'core-0', incarnation: 1, role: 'core' });
  const receiver = new RouteSync({ cluster: 'bench', actor: 'replicant-0', incarnation: 1, role: 'replicant' });
  for (let i = 0; i < ROUTES; i++) sender.subscribe(benchFilter(i), 0);
  sender.tick(100);
  sender.takeOutgoing();
  const timings: Timings = { encodeMs: 0, decodeMs: 0, receiveMs: 0, bytes: 0, messages: 0 };
  const start = performance.now();
  let now = 100;
  sender.connect('replicant-0', now);
  receiver.connect('core-0', now);
  for (let round = 0; round < 100_000 && receiver.table!.size < ROUTES; round++) {
    now++;
    sender.tick(now);
    receiver.tick(now);
    carry(sender, receiver, now, timings);
    carry(receiver, sender, now, timings);
  }
  const totalMs = performance.now() - start;
  if (receiver.table!.size !== ROUTES) throw new Error(`bootstrap incomplete: ${receiver.table!.size} of ${ROUTES} routes`);
  if (report) {
    console.log(
      `bootstrap of ${ROUTES} routes: ${totalMs.toFixed(0)} ms in all — encode ${timings.encodeMs.toFixed(0)} ms, ` +
        `decode ${timings.decodeMs.toFixed(0)} ms, apply ${timings.receiveMs.toFixed(0)} ms; ` +
        `${mb(timings.bytes)} in ${timings.messages} messages (${(timings.bytes / ROUTES).toFixed(1)} B/route)`,
    );
  }
  return { receiver, timings, totalMs };
}

function carry(from: RouteSync, to: RouteSync, now: number, timings: Timings): void {
  for (const { message } of from.takeOutgoing()) {
    let t = performance.now();
    const bytes = encodeMessage(message);
    timings.encodeMs += performance.now() - t;
    t = performance.now();
    const decoded = decodeMessage(bytes);
    timings.decodeMs += performance.now() - t;
    t = performance.now();
    to.receive(from.actor, decoded, now);
    timings.receiveMs += performance.now() - t;
    timings.bytes += bytes.length;
    timings.messages++;
  }
}

function measureDeltaThroughput(): void {
  const sender = new RouteSync({ cluster: 'bench', actor: 'core-0', incarnation: 1, role: 'core' });
  const receiver = new RouteSync({ cluster: 'bench', actor: 'core-1', incarnation: 1, role: 'core' });
  const timings: Timings = { encodeMs: 0, decodeMs: 0, receiveMs: 0, bytes: 0, messages: 0 };
  sender.connect('core-1', 0);
  receiver.connect('core-0', 0);
  carry(sender, receiver, 0, timings);
  carry(receiver, sender, 0, timings);
  const start = performance.now();
  let now = 1;
  for (let i = 0; i < ROUTES; i++) {
    sender.subscribe(benchFilter(i), now);
    if (i % 1000 === 999) {
      now += 1;
      sender.tick(now);
      carry(sender, receiver, now, timings);
      carry(receiver, sender, now, timings);
    }
  }
  for (let k = 0; k < 20 && receiver.table!.size < ROUTES; k++) {
    now += 10;
    sender.tick(now);
    carry(sender, receiver, now, timings);
    carry(receiver, sender, now, timings);
  }
  const ms = performance.now() - start;
  console.log(
    `live route ops: ${ROUTES} subscriptions synced in ${ms.toFixed(0)} ms (${((ROUTES / ms) * 1000 / 1e6).toFixed(2)} M routes/s), ` +
      `${sender.stats().opsMessagesSent} ops messages, ${mb(timings.bytes)}`,
  );
}

measureTableMemory();
measureReceiverMemory();
measureMatch();
bootstrapPair(false); // warm-up
bootstrapPair(true);
measureDeltaThroughput();
