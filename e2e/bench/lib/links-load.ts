/**
 * Workloads of e2e/bench/links.sh, one subcommand each; every result is one JSON document on stdout.
 *
 *   prepare     --dir D                         users file (the link superuser) + password file for a region
 *   wait-link   --admin URL --link NAME         until the link is `connected` (and --routes N received, if given)
 *   bandwidth   --pub-port P --sub-port S --control URL --proxies a,b --label L [--rounds R] [--payload B]
 *   convergence --port P --admin URL --link NAME --control URL [--count N]
 *   drain       --pub-port P --sub-port S --admin URL --link NAME --control URL --proxy NAME [--count N] [--payload B] [--qos Q]
 *   bootstrap   --port P --admin-a URL --admin-b URL --links-a F --links-b F --control URL --proxy NAME [--count N] [--ttl S]
 *               [--pid-a PID --pid-b PID] [--hook-dir D --profile-dir D]
 *               route bootstrap after a link outage (see `bootstrap` below); with the PIDs, the regions' CPU time in
 *               the bootstrap window; with the hook dir (PROFILE=1), a CPU profile of each region over that window only
 *   commits     --before F --after F --label L --case C   store commit latency (meridian_store_write_seconds) between two /metrics scrapes
 *   summarize   --dir RESULTS_DIR               the Markdown table of every JSON result in the directory
 */
import { existsSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { hashPassword } from '../../../broker/src/mqtt/auth/password.js';

export const LINK_USER = 'link';
const LINK_PASSWORD = 'link-bench-secret';
const TOPICS = 1000;
/** 1 % of the topics have a subscriber in the other region. */
const SUBSCRIBED_EVERY = 100;

type Flags = Map<string, string>;

function parseFlags(argv: string[]): Flags {
  const flags: Flags = new Map();
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith('--') || argv[i + 1] === undefined) throw new Error(`links-load: bad argument ${argv[i]}`);
    flags.set(argv[i].slice(2), argv[i + 1]);
  }
  return flags;
}

function flag(flags: Flags, name: string, fallback?: string): string {
  const value = flags.get(name) ?? fallback;
  if (value === undefined) throw new Error(`links-load: --${name} is required`);
  return value;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitUntil(check: () => Promise<boolean>, what: string, timeoutMs: number, pollMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (err) {
      lastError = ` (last error: ${(err as Error).message})`;
    }
    await sleep(pollMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError}`);
}

async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}`);
  return (await res.json()) as T;
}

interface ProxyCounters { toTarget: number; fromTarget: number }
type ProxyStats = Record<string, ProxyCounters>;

async function proxyBytes(control: string, names: string[]): Promise<{ total: number; perProxy: ProxyStats }> {
  const stats = await getJson<ProxyStats>(`${control}/stats`);
  let total = 0;
  for (const name of names) {
    const s = stats[name];
    if (!s) throw new Error(`proxy ${name} not in ${control}/stats: ${JSON.stringify(stats)}`);
    total += s.toTarget + s.fromTarget;
  }
  return { total, perProxy: stats };
}

async function resetProxies(control: string): Promise<void> {
  const res = await fetch(`${control}/reset`, { method: 'POST' });
  if (!res.ok) throw new Error(`POST ${control}/reset: HTTP ${res.status}`);
}

function connect(port: number, clientId: string): Promise<MqttClient> {
  return mqtt.connectAsync({ host: '127.0.0.1', port, protocolVersion: 4, clientId, reconnectPeriod: 0, connectTimeout: 10000 });
}

const topicName = (i: number): string => `bench/region/t${String(i).padStart(4, '0')}`;

async function prepare(flags: Flags): Promise<void> {
  const dir = flag(flags, 'dir');
  const hash = await hashPassword(LINK_PASSWORD, { N: 1024, r: 8, p: 1 });
  writeFileSync(path.join(dir, 'users.yaml'), `users:\n  - { username: ${LINK_USER}, superuser: true, passwordHash: "${hash}" }\n`);
  writeFileSync(path.join(dir, 'link-password'), `${LINK_PASSWORD}\n`);
}

interface LinkInfo { name: string; state: string; routesReceived: number; routesSent: number; bootstraps: number; lastBootstrapAt: string | null; remoteAgents: number; incarnation: number }

async function linkInfo(admin: string, name: string): Promise<LinkInfo> {
  const { links } = await getJson<{ links: LinkInfo[] }>(`${admin}/api/v1/links`);
  const found = links.find((l) => l.name === name);
  if (!found) throw new Error(`${admin} has no link ${name}`);
  return found;
}

async function waitLink(flags: Flags): Promise<void> {
  const admin = flag(flags, 'admin');
  const name = flag(flags, 'link');
  const routes = Number(flag(flags, 'routes', '0'));
  await waitUntil(async () => {
    const l = await linkInfo(admin, name);
    return l.state === 'connected' && l.routesReceived >= routes;
  }, `link ${name} at ${admin} connected with ${routes} routes`, 30000);
}

/** Publishes `count` QoS 1 messages round-robin over `topics`, at most `window` unacknowledged. */
async function publishAll(client: MqttClient, topics: string[], count: number, payload: Buffer, window = 100): Promise<void> {
  const pending = new Set<Promise<unknown>>();
  for (let i = 0; i < count; i++) {
    const p = client.publishAsync(topics[i % topics.length], payload, { qos: 1 }).finally(() => pending.delete(p));
    pending.add(p);
    if (pending.size >= window) await Promise.race(pending);
  }
  await Promise.all(pending);
}

/**
 * The bandwidth workload: 1000 topics, a subscriber in the other region on 10 of them. Three windows, counters
 * reset before each: idle (heartbeats only), traffic on the 990 unsubscribed topics, traffic on the 10 subscribed.
 */
async function bandwidth(flags: Flags): Promise<void> {
  const control = flag(flags, 'control');
  const proxies = flag(flags, 'proxies').split(',');
  const rounds = Number(flag(flags, 'rounds', '10'));
  const payload = Buffer.alloc(Number(flag(flags, 'payload', '256')), 0x61);
  const subscribedCount = Number(flag(flags, 'subscribed-messages', '2000'));
  const all = Array.from({ length: TOPICS }, (_, i) => topicName(i));
  const subscribed = all.filter((_, i) => i % SUBSCRIBED_EVERY === 0);
  const unsubscribed = all.filter((_, i) => i % SUBSCRIBED_EVERY !== 0);
  const label = flag(flags, 'label');
  const sub = await connect(Number(flag(flags, 'sub-port')), `${label}-bw-sub`);
  const pub = await connect(Number(flag(flags, 'pub-port')), `${label}-bw-pub`);
  try {
    let received = 0;
    sub.on('message', () => { received++; });
    await sub.subscribeAsync(subscribed, { qos: 1 });
    // The route (or bridge subscription) has crossed once a probe on a subscribed topic arrives.
    await waitUntil(async () => {
      await pub.publishAsync(subscribed[0], Buffer.from('probe'), { qos: 1 });
      await sleep(200);
      return received > 0;
    }, `${label}: a first message across the link`, 20000, 0);
    await sleep(1000);

    const unsubscribedMessages = rounds * unsubscribed.length;
    await resetProxies(control);
    const idleStart = Date.now();
    await sleep(3000);
    const idle = await proxyBytes(control, proxies);
    const idleMs = Date.now() - idleStart;

    received = 0;
    await resetProxies(control);
    const unsubStart = Date.now();
    await publishAll(pub, unsubscribed, unsubscribedMessages, payload);
    await sleep(1000);
    const unsub = await proxyBytes(control, proxies);
    const unsubMs = Date.now() - unsubStart;
    const strayDeliveries = received;

    received = 0;
    await resetProxies(control);
    await publishAll(pub, subscribed, subscribedCount, payload);
    await waitUntil(async () => received >= subscribedCount, `${label}: ${subscribedCount} deliveries`, 30000);
    await sleep(1000);
    const subBytes = await proxyBytes(control, proxies);
    const meanTopicPlusPayload = subscribed.reduce((n, t) => n + Buffer.byteLength(t), 0) / subscribed.length + payload.length;
    console.log(JSON.stringify({
      kind: 'bandwidth', label, payloadBytes: payload.length, topics: TOPICS, subscribedTopics: subscribed.length,
      idle: { ms: idleMs, bytes: idle.total },
      unsubscribed: { messages: unsubscribedMessages, ms: unsubMs, bytes: unsub.total, strayDeliveries },
      subscribed: {
        messages: subscribedCount, delivered: received, bytes: subBytes.total,
        bytesPerMessage: subBytes.total / received, topicPlusPayload: meanTopicPlusPayload,
        ratio: subBytes.total / received / meanTopicPlusPayload,
      },
      perProxy: subBytes.perProxy,
    }));
  } finally {
    await Promise.allSettled([sub.endAsync(), pub.endAsync()]);
  }
}

/** 10k subscriptions in one region; the time until the other region's link shows them as received routes. */
async function convergence(flags: Flags): Promise<void> {
  const admin = flag(flags, 'admin');
  const linkName = flag(flags, 'link');
  const count = Number(flag(flags, 'count', '10000'));
  const delay = (await getJson<Record<string, { delayMs: number }>>(`${flag(flags, 'control')}/stats`));
  const oneWayMs = Math.max(...Object.values(delay).map((p) => p.delayMs));
  const before = (await linkInfo(admin, linkName)).routesReceived;
  const client = await connect(Number(flag(flags, 'port')), 'convergence-sub');
  try {
    const filters = Array.from({ length: count }, (_, i) => `conv/${i}/+/state`);
    const batches: string[][] = [];
    for (let i = 0; i < filters.length; i += 100) batches.push(filters.slice(i, i + 100));
    const started = performance.now();
    await Promise.all(batches.map((b) => client.subscribeAsync(b, { qos: 1 })));
    const subscribed = performance.now();
    await waitUntil(async () => (await linkInfo(admin, linkName)).routesReceived >= before + count,
      `${count} routes received at ${admin}`, 30000, 5);
    const visible = performance.now();
    console.log(JSON.stringify({
      kind: 'convergence', subscriptions: count, oneWayDelayMs: oneWayMs, rttMs: 2 * oneWayMs,
      subscribeMs: subscribed - started, afterLastSubackMs: visible - subscribed, fromFirstSubscribeMs: visible - started,
      targetMs: 2 * oneWayMs + 200,
    }));
  } finally {
    await client.endAsync();
  }
}

/** Sets `routeTtlSeconds` on every entry of a links file (atomic replace: the agent hot-reloads it). */
function setRouteTtl(file: string, seconds: number): void {
  const text = readFileSync(file, 'utf8').replace(/^ {4}routeTtlSeconds: .*\n/gm, '');
  const next = text.replace(/^( {2}- name: .*\n)/gm, `$1    routeTtlSeconds: ${seconds}\n`);
  if (next === text) throw new Error(`links-load: no link entry in ${file}`);
  writeFileSync(`${file}.tmp`, next);
  renameSync(`${file}.tmp`, file);
}

/** utime + stime of a process in ms (/proc/<pid>/stat), or null when the PID is not given or not readable. */
function cpuMs(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
    // Fields 14 and 15 of stat (utime, stime) are the 12th and 13th after the command name; USER_HZ is 100 on Linux.
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return null;
  }
}

/** Asks a region's cluster-node-hook (preloaded with PROFILE=1) for `command`; resolves with the answer file. */
async function askHook(dir: string, pid: number, command: string, answer: string): Promise<string> {
  const file = path.join(dir, `${pid}.${answer}`);
  rmSync(file, { force: true });
  writeFileSync(path.join(dir, `${pid}.cmd`), `${command}\n`);
  process.kill(pid, 'SIGUSR2');
  await waitUntil(async () => existsSync(file), `region pid ${pid} to answer ${command}`, 30000, 20);
  return file;
}

async function proxyConnections(control: string, proxy: string): Promise<number> {
  const stats = await getJson<Record<string, { connections: number }>>(`${control}/stats`);
  if (!stats[proxy]) throw new Error(`links-load: no proxy ${proxy} at ${control}`);
  return stats[proxy].connections;
}

/**
 * Bootstrap of `count` routes across a link (issue 4: ≤ 2 s for 100 k). Both links get `routeTtlSeconds: ttl`
 * (hot reload), `count` subscriptions are made in A and reach B; the A → B proxy is cut until B has expired A's
 * lane (table empty: a real bootstrap follows, not a resume), then restored. Measured: from the restore and from
 * the moment A's agent reconnected through the proxy until B's table holds every route again (one new lane:
 * `bootstraps` + 1). The restore → reconnect part is A's redial back-off, not the bootstrap.
 */
async function bootstrap(flags: Flags): Promise<void> {
  const adminA = flag(flags, 'admin-a');
  const adminB = flag(flags, 'admin-b');
  const control = flag(flags, 'control');
  const proxy = flag(flags, 'proxy');
  const count = Number(flag(flags, 'count', '100000'));
  const ttl = Number(flag(flags, 'ttl', '3'));
  const incarnationBefore = (await linkInfo(adminA, 'b')).incarnation;
  setRouteTtl(flag(flags, 'links-a'), ttl);
  setRouteTtl(flag(flags, 'links-b'), ttl);
  await waitUntil(async () => {
    const [a, b] = await Promise.all([linkInfo(adminA, 'b'), linkInfo(adminB, 'a')]);
    return a.incarnation > incarnationBefore && a.state === 'connected' && b.state === 'connected' && b.remoteAgents > 0;
  }, `links restarted with routeTtlSeconds ${ttl}`, 30000);
  const client = await connect(Number(flag(flags, 'port')), 'bootstrap-sub');
  try {
    const filters = Array.from({ length: count }, (_, i) => `boot/${i}/+/state`);
    const subscribeStarted = performance.now();
    for (let i = 0; i < filters.length; i += 1000) {
      const batch: Promise<unknown>[] = [];
      for (let j = i; j < Math.min(i + 1000, filters.length); j += 100) batch.push(client.subscribeAsync(filters.slice(j, j + 100), { qos: 1 }));
      await Promise.all(batch);
    }
    const subscribedMs = performance.now() - subscribeStarted;
    await waitUntil(async () => (await linkInfo(adminB, 'a')).routesReceived >= count, `${count} routes in B before the cut`, 120000, 20);
    const convergedMs = performance.now() - subscribeStarted;

    await fetch(`${control}/cut?name=${proxy}`, { method: 'POST' });
    const cutAt = performance.now();
    await waitUntil(async () => (await linkInfo(adminB, 'a')).routesReceived === 0, 'A\'s lane expired in B', (ttl + 30) * 1000, 20);
    const expiredAfterMs = performance.now() - cutAt;
    const before = await linkInfo(adminB, 'a');
    const pids = { a: flags.has('pid-a') ? Number(flags.get('pid-a')) : undefined, b: flags.has('pid-b') ? Number(flags.get('pid-b')) : undefined };
    const hookDir = flags.get('hook-dir');
    if (hookDir !== undefined) for (const pid of Object.values(pids)) if (pid !== undefined) await askHook(hookDir, pid, 'profile-start', 'profile-start.done');
    const cpuBefore = { a: cpuMs(pids.a), b: cpuMs(pids.b) };

    // The connections counted in the restore's own answer: every later one is accepted (a refused dial counts too).
    const restoreAnswer = await fetch(`${control}/restore?name=${proxy}`, { method: 'POST' });
    const restoredAt = performance.now();
    const connectionsBefore = ((await restoreAnswer.json()) as Record<string, { connections: number }>)[proxy].connections;
    let reconnectedAt = 0;
    await waitUntil(async () => {
      if (reconnectedAt === 0 && (await proxyConnections(control, proxy)) > connectionsBefore) reconnectedAt = performance.now();
      return (await linkInfo(adminB, 'a')).routesReceived >= count;
    }, `${count} routes back in B after the restore`, 60000, 5);
    const fullAt = performance.now();
    const cpuAfter = { a: cpuMs(pids.a), b: cpuMs(pids.b) };
    if (hookDir !== undefined) {
      const profileDir = flag(flags, 'profile-dir');
      for (const [region, pid] of Object.entries(pids)) {
        if (pid !== undefined) renameSync(await askHook(hookDir, pid, 'profile-stop', 'cpuprofile'), path.join(profileDir, `bootstrap-${region}.cpuprofile`));
      }
    }
    const after = await linkInfo(adminB, 'a');
    if (reconnectedAt === 0) reconnectedAt = fullAt;
    const spent = (r: 'a' | 'b'): number | null => (cpuBefore[r] === null || cpuAfter[r] === null ? null : (cpuAfter[r] as number) - (cpuBefore[r] as number));
    console.log(JSON.stringify({
      kind: 'bootstrap', routes: count, routeTtlSeconds: ttl, subscribeMs: subscribedMs, initialConvergenceMs: convergedMs,
      laneExpiredAfterCutMs: expiredAfterMs, restoreToReconnectMs: reconnectedAt - restoredAt, reconnectToFullMs: fullAt - reconnectedAt,
      restoreToFullMs: fullAt - restoredAt, cpuMsA: spent('a'), cpuMsB: spent('b'), routesAfter: after.routesReceived, bootstrapsBefore: before.bootstraps, bootstrapsAfter: after.bootstraps,
      targetMs: 2000,
    }));
  } finally {
    await client.endAsync();
  }
}

/**
 * Forwarding capacity of the link alone: with the link cut, `count` messages are queued in A (publish time not
 * measured); after the restore, the rate at which B's subscriber receives them, first to last message. Also
 * checks that each arrived once and in order.
 */
async function drain(flags: Flags): Promise<void> {
  const admin = flag(flags, 'admin');
  const linkName = flag(flags, 'link');
  const control = flag(flags, 'control');
  const proxy = flag(flags, 'proxy');
  const count = Number(flag(flags, 'count', '30000'));
  const qos = Number(flag(flags, 'qos', '1')) as 1 | 2;
  const payload = Buffer.alloc(Number(flag(flags, 'payload', '256')), 0x62);
  const sub = await connect(Number(flag(flags, 'sub-port')), 'drain-sub');
  const pub = await connect(Number(flag(flags, 'pub-port')), 'drain-pub');
  try {
    const arrivals: number[] = [];
    let firstAt = 0;
    let lastAt = 0;
    sub.on('message', (topic, message) => {
      if (topic !== 'drain/data') return;
      if (arrivals.length === 0) firstAt = performance.now();
      lastAt = performance.now();
      arrivals.push(message.readUInt32BE(0));
    });
    await sub.subscribeAsync('drain/#', { qos });
    let probes = 0;
    sub.on('message', (topic) => { if (topic === 'drain/probe') probes++; });
    await waitUntil(async () => {
      await pub.publishAsync('drain/probe', Buffer.from('probe'), { qos: 1 });
      await sleep(200);
      return probes > 0;
    }, 'a first message across the link', 20000, 0);
    const queued = async (): Promise<number> => (await getJson<{ links: Array<{ name: string; queue: { depth: number } }> }>(`${admin}/api/v1/links`)).links.find((l) => l.name === linkName)?.queue.depth ?? -1;
    await waitUntil(async () => (await queued()) === 0, 'an empty queue before the cut', 20000);
    await postControl(control, `/cut?name=${proxy}`);
    const publishStart = performance.now();
    const pending = new Set<Promise<unknown>>();
    for (let i = 0; i < count; i++) {
      const body = Buffer.from(payload);
      body.writeUInt32BE(i, 0);
      const p = pub.publishAsync('drain/data', body, { qos }).finally(() => pending.delete(p));
      pending.add(p);
      if (pending.size >= 200) await Promise.race(pending);
    }
    await Promise.all(pending);
    const publishMs = performance.now() - publishStart;
    await waitUntil(async () => (await queued()) >= count, `${count} messages in the link queue`, 30000);
    const restoredAt = performance.now();
    await postControl(control, `/restore?name=${proxy}`);
    await waitUntil(async () => arrivals.length >= count, `${count} messages drained to the subscriber`, 120000, 20);
    await sleep(500);
    const inOrder = arrivals.every((v, i) => v === i);
    const spanMs = lastAt - firstAt;
    console.log(JSON.stringify({
      kind: 'drain', messages: count, qos, payloadBytes: payload.length, publishMs, received: arrivals.length,
      duplicates: arrivals.length - new Set(arrivals).size, inOrder, firstAfterRestoreMs: firstAt - restoredAt, spanMs,
      ratePerSec: (count - 1) / (spanMs / 1000),
    }));
  } finally {
    await postControl(control, `/restore?name=${proxy}`).catch(() => undefined);
    await Promise.allSettled([sub.endAsync(), pub.endAsync()]);
  }
}

/** Cumulative buckets of `meridian_store_write_seconds` in a /metrics text: upper bound (s) → count. */
function commitBuckets(text: string): Map<number, number> {
  const buckets = new Map<number, number>();
  for (const line of text.split('\n')) {
    const m = /^meridian_store_write_seconds_bucket\{le="([^"]+)"\} (\d+)/.exec(line);
    if (m) buckets.set(m[1] === '+Inf' ? Infinity : Number(m[1]), Number(m[2]));
  }
  if (buckets.size === 0) throw new Error('no meridian_store_write_seconds buckets in the /metrics scrape');
  return buckets;
}

/**
 * Store commits (group commit + fsync in durable mode) between two /metrics scrapes of one region: how many, and
 * the bucket bound under which 50 / 90 / 99 % of them finished. A forwarded message waits for one on the origin (its
 * queue append) and its carrier's PUBACK for one on the receiver (the dedup mark).
 */
function commits(flags: Flags): void {
  const before = commitBuckets(readFileSync(flag(flags, 'before'), 'utf8'));
  const after = commitBuckets(readFileSync(flag(flags, 'after'), 'utf8'));
  const bounds = [...after.keys()].sort((x, y) => x - y);
  const delta = bounds.map((b) => (after.get(b) ?? 0) - (before.get(b) ?? 0));
  const total = delta[delta.length - 1];
  const quantile = (q: number): number | null => {
    const i = delta.findIndex((n) => n >= q * total);
    return total === 0 || i < 0 ? null : bounds[i] * 1000;
  };
  console.log(JSON.stringify({ kind: 'commits', label: flag(flags, 'label'), case: flag(flags, 'case'), commits: total, p50UpToMs: quantile(0.5), p90UpToMs: quantile(0.9), p99UpToMs: quantile(0.99) }));
}

async function postControl(control: string, pathname: string): Promise<void> {
  const res = await fetch(`${control}${pathname}`, { method: 'POST' });
  if (!res.ok) throw new Error(`POST ${control}${pathname}: HTTP ${res.status} ${await res.text()}`);
}

interface BenchReport {
  receive: { ratePerSec: number; received: number; missing: number; duplicates?: number; latencyMs?: Record<string, number> };
  publish?: { ratePerSec?: number };
}

function row(cells: (string | number)[]): string {
  return `| ${cells.join(' | ')} |`;
}

const bytes = (n: number): string => (n < 10240 ? `${n} B` : `${(n / 1024).toFixed(1)} KiB`);

function summarize(flags: Flags): void {
  const dir = flag(flags, 'dir');
  const read = (f: string): Record<string, unknown> => JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as Record<string, unknown>;
  const files = readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
  const lines: string[] = [];
  const bw = files.filter((f) => f.startsWith('bandwidth-'));
  if (bw.length) {
    lines.push('Bandwidth (bytes at the proxies between the regions, both directions)', '',
      row(['link', 'idle 3 s', 'unsubscribed traffic', 'bytes / delivered msg', 'topic + payload', 'ratio (target ≤ 1.15)']),
      row(['---', '---', '---', '---', '---', '---']));
    for (const f of bw) {
      const r = read(f) as unknown as { label: string; idle: { bytes: number }; unsubscribed: { messages: number; bytes: number; ms: number }; subscribed: { bytesPerMessage: number; topicPlusPayload: number; ratio: number; delivered: number; messages: number } };
      lines.push(row([r.label, `${r.idle.bytes} B`, `${bytes(r.unsubscribed.bytes)} for ${r.unsubscribed.messages} msgs in ${(r.unsubscribed.ms / 1000).toFixed(1)} s`,
        `${r.subscribed.bytesPerMessage.toFixed(1)} B (${r.subscribed.delivered}/${r.subscribed.messages} delivered)`,
        `${r.subscribed.topicPlusPayload.toFixed(0)} B`, r.subscribed.ratio.toFixed(3)]));
    }
    lines.push('');
  }
  const benches = files.filter((f) => f.startsWith('pub-'));
  if (benches.length) {
    lines.push('Forwarding A → B through the link (`meridian bench pub`, publishers on A, subscribers on B, QoS 2)', '',
      row(['case', 'received msg/s', 'missing', 'p50 ms', 'p99 ms']), row(['---', '---', '---', '---', '---']));
    for (const f of benches) {
      const r = read(f) as unknown as BenchReport;
      const l = r.receive.latencyMs ?? {};
      lines.push(row([f.replace(/^pub-|\.json$/g, ''), Math.round(r.receive.ratePerSec), r.receive.missing, l.p50 ?? '-', l.p99 ?? '-']));
    }
    lines.push('');
  }
  const commitFiles = files.filter((x) => x.startsWith('commits-'));
  if (commitFiles.length) {
    lines.push('Store commits (append + fsync, durable mode) during a case: a forwarded message waits for one in A, its carrier\'s PUBACK for one in B', '',
      row(['region', 'case', 'commits', 'p50 ≤ ms', 'p90 ≤ ms', 'p99 ≤ ms']), row(['---', '---', '---', '---', '---', '---']));
    for (const f of commitFiles) {
      const r = read(f) as unknown as { label: string; case: string; commits: number; p50UpToMs: number | null; p90UpToMs: number | null; p99UpToMs: number | null };
      lines.push(row([r.label, r.case, r.commits, r.p50UpToMs ?? '-', r.p90UpToMs ?? '-', r.p99UpToMs ?? '-']));
    }
    lines.push('');
  }
  for (const f of files.filter((x) => x.startsWith('drain'))) {
    const r = read(f) as unknown as { messages: number; qos: number; payloadBytes: number; received: number; duplicates: number; inOrder: boolean; firstAfterRestoreMs: number; spanMs: number; ratePerSec: number };
    lines.push(`Link drain (forwarding capacity of the link alone): ${r.messages} queued QoS ${r.qos} messages of ${r.payloadBytes} B ` +
      `drained at **${Math.round(r.ratePerSec)} msg/s** (first to last arrival, ${(r.spanMs / 1000).toFixed(2)} s); ` +
      `${r.received} received, ${r.duplicates} duplicates, ${r.inOrder ? 'in order' : 'OUT OF ORDER'}.`, '');
  }
  for (const f of files.filter((x) => x.startsWith('convergence'))) {
    const r = read(f) as unknown as { subscriptions: number; rttMs: number; subscribeMs: number; afterLastSubackMs: number; fromFirstSubscribeMs: number; targetMs: number };
    lines.push(`Route convergence: ${r.subscriptions} subscriptions in A (RTT ${r.rttMs} ms): SUBACKs after ${r.subscribeMs.toFixed(0)} ms; ` +
      `visible in B ${r.afterLastSubackMs.toFixed(0)} ms after the last SUBACK, ${r.fromFirstSubscribeMs.toFixed(0)} ms after the first SUBSCRIBE ` +
      `(target ≤ ${r.targetMs} ms).`);
  }
  for (const f of files.filter((x) => x.startsWith('bootstrap'))) {
    const r = read(f) as unknown as { routes: number; initialConvergenceMs: number; laneExpiredAfterCutMs: number; restoreToReconnectMs: number; reconnectToFullMs: number; restoreToFullMs: number; bootstrapsBefore: number; bootstrapsAfter: number; targetMs: number; cpuMsA: number | null; cpuMsB: number | null };
    lines.push('', `Route bootstrap: ${r.routes} subscriptions in A (in B ${(r.initialConvergenceMs / 1000).toFixed(1)} s after the first SUBSCRIBE); ` +
      `link A → B cut until B dropped A's lane (${(r.laneExpiredAfterCutMs / 1000).toFixed(1)} s), restored: all ${r.routes} routes in B again ` +
      `**${r.reconnectToFullMs.toFixed(0)} ms after A's agent reconnected** (target ≤ ${r.targetMs} ms), ${r.restoreToFullMs.toFixed(0)} ms after the restore ` +
      `(${r.restoreToReconnectMs.toFixed(0)} ms of redial back-off); bootstraps ${r.bootstrapsBefore} → ${r.bootstrapsAfter}; ` +
      `CPU from the restore to the last route: A ${r.cpuMsA ?? '?'} ms, B ${r.cpuMsB ?? '?'} ms.`);
  }
  console.log(lines.join('\n'));
}

const commands: Record<string, (flags: Flags) => Promise<void> | void> = {
  prepare, 'wait-link': waitLink, bandwidth, convergence, drain, bootstrap, commits, summarize,
};

async function main(): Promise<void> {
  const [command, ...rest] = process.argv.slice(2);
  const run = commands[command ?? ''];
  if (!run) throw new Error(`links-load: unknown command ${command}; one of ${Object.keys(commands).join(', ')}`);
  await run(parseFlags(rest));
}

main().catch((err: unknown) => {
  console.error(`links-load: ${(err as Error).stack ?? String(err)}`);
  process.exit(1);
});
